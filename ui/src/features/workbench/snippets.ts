// Code that reproduces the workbench's current request with an API key.
import { requestBody, type ChatMessage, type ChatSettings } from "./chatStream";

export function snippets(base: string, s: ChatSettings, history: ChatMessage[]) {
  const body = requestBody(s, history);
  const json = JSON.stringify(body, null, 2);
  const curl = `curl -N ${base}/v1/chat/completions \\
  -H "Authorization: Bearer $INFERPLANE_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '${JSON.stringify(body).replace(/'/g, "'\\''")}'`;
  const py = `import os
from openai import OpenAI

client = OpenAI(base_url="${base}/v1", api_key=os.environ["INFERPLANE_API_KEY"])
stream = client.chat.completions.create(
    model=${JSON.stringify(s.model)},
    messages=${JSON.stringify(body.messages, null, 4).replace(/\n/g, "\n    ")},
    temperature=${s.temperature},
    max_tokens=${s.max_tokens},
    stream=True,
)
for chunk in stream:
    print(chunk.choices[0].delta.content or "", end="", flush=True)
`;
  const js = `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${base}/v1", apiKey: process.env.INFERPLANE_API_KEY });
const stream = await client.chat.completions.create(${json.replace(/\n/g, "\n")});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
}
`;
  return { curl, python: py, javascript: js };
}
