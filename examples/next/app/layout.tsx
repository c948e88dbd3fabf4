import type { ReactNode } from "react";
import "meterkit/styles.css";

export const metadata = { title: "meterkit + Next.js" };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
