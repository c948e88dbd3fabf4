import type { Preview } from "@storybook/react-vite";
import "../src/react/styles.css";
import "./preview.css";
import { withMeter } from "../stories/withMeter.js";

const preview: Preview = {
  decorators: [withMeter],
  tags: ["autodocs"],
  parameters: {
    layout: "centered",
    controls: { expanded: true },
    // Accessibility violations fail the story tests (and show in the a11y panel).
    a11y: { test: "error" },
  },
};

export default preview;
