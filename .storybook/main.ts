import type { StorybookConfig } from "@storybook/react-vite";

// The options of react-docgen-typescript. Storybook types them through a plugin package that
// is not installed here, so its config type reads `undefined`: the cast below says what it is.
interface DocgenOptions {
  shouldExtractLiteralValuesFromEnum: boolean;
  propFilter: (prop: { parent?: { fileName: string } }) => boolean;
}
const docgen: DocgenOptions = {
  shouldExtractLiteralValuesFromEnum: true,
  // Document the kit's own props, not the hundreds inherited from React's DOM attributes.
  propFilter: (prop) => !prop.parent || !/node_modules/.test(prop.parent.fileName),
};

const config: StorybookConfig = {
  stories: ["../stories/**/*.stories.@(ts|tsx)"],
  addons: ["@storybook/addon-docs", "@storybook/addon-a11y", "@storybook/addon-vitest"],
  framework: { name: "@storybook/react-vite", options: {} },
  core: { disableTelemetry: true, disableWhatsNewNotifications: true },
  typescript: {
    // Reads the JSDoc of each prop (and its default) from the TypeScript types for autodocs.
    reactDocgen: "react-docgen-typescript",
    reactDocgenTypescriptOptions: docgen as unknown as undefined,
  },
  async viteFinal(config) {
    const { default: react } = await import("@vitejs/plugin-react");
    return { ...config, plugins: [...(config.plugins ?? []), react()] };
  },
};

export default config;
