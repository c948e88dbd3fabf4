import type { Decorator } from "@storybook/react-vite";
import { expect } from "storybook/test";

/** Renders the story in a 340 px wide column: a small phone with the page's own 1rem margins. */
export const narrow: Decorator = (Story) => (
  <div className="story-narrow" style={{ width: "calc(340px - 2rem)" }}>
    <Story />
  </div>
);

/** Fails if any element of the column sticks out of it sideways (text that does not wrap, a table too wide). */
export async function expectNoOverflow(canvas: HTMLElement) {
  const column = canvas.querySelector<HTMLElement>(".story-narrow")!;
  const box = column.getBoundingClientRect();
  const outside = [...column.querySelectorAll<HTMLElement>("*")]
    .filter((el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1);
    })
    .map((el) => `${el.tagName.toLowerCase()}.${el.getAttribute("class") ?? ""} ${Math.round(el.getBoundingClientRect().width)}px`);
  await expect(outside).toEqual([]);
}
