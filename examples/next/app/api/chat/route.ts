// A metered chat route: the AI SDK middleware from meterkit/ai reserves the prompt plus the
// reply limit before the model runs, commits what the model reports, and gives the rest back.
// A user without enough tokens gets 402 limit_reached, which opens the kit's LimitReachedDialog.
import { generateText, wrapLanguageModel } from "ai";
import { meterMiddleware } from "meterkit/ai";
import { meterErrorResponse } from "meterkit/server";
import { getMeter, USER_ID } from "@/lib/meter";
import { simulatedModel } from "@/lib/simulatedModel";

export const dynamic = "force-dynamic";

export async function POST(request: Request): Promise<Response> {
  const body = (await request.json().catch(() => null)) as { prompt?: unknown; maxOutputTokens?: unknown } | null;
  const prompt = typeof body?.prompt === "string" ? body.prompt : "";
  const maxOutputTokens = typeof body?.maxOutputTokens === "number" ? body.maxOutputTokens : 200;
  const model = wrapLanguageModel({ model: simulatedModel(), middleware: meterMiddleware(await getMeter(), { userId: USER_ID }) });
  try {
    const result = await generateText({ model, prompt, maxOutputTokens, maxRetries: 0 });
    return Response.json({ text: result.text, usage: result.usage });
  } catch (err) {
    const answer = meterErrorResponse(err);
    if (answer) return answer;
    console.error(err);
    return Response.json({ error: { code: "internal", message: "The chat failed." } }, { status: 500 });
  }
}
