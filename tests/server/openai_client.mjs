// openai_client.mjs: drives `cllm serve` with the official `openai` npm package (v6), as a
// vLLM user would: list models, chat and text completions, streaming and not, error classes.
// Usage: node openai_client.mjs BASE_URL MODEL_NAME DIR_WITH_NODE_MODULES
// Prints one "ok:"/"FAIL:" line per check; exits 1 if any failed.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [, , baseURL, model, modDir] = process.argv;
const require = createRequire(modDir.replace(/\/?$/, '/'));
const OpenAI = (await import(pathToFileURL(require.resolve('openai')).href)).default;
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 60000 });

let fails = 0;
function check(cond, what) {
  console.log(`${cond ? 'ok' : 'FAIL'}: openai client: ${what}`);
  if (!cond) fails++;
}

async function collectChat(stream) {
  const out = { text: '', role: null, finish: null, usage: null, chunks: 0, ids: new Set() };
  for await (const chunk of stream) {
    out.chunks++;
    out.ids.add(chunk.id);
    if (chunk.usage) out.usage = chunk.usage;
    for (const ch of chunk.choices) {
      if (ch.delta.role) out.role = out.role ?? ch.delta.role;
      if (ch.delta.content) out.text += ch.delta.content;
      if (ch.finish_reason) out.finish = ch.finish_reason;
    }
  }
  return out;
}

try {
  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === model && models.data[0].object === 'model',
    'models.list() returns the served model');

  const messages = [
    { role: 'system', content: 'You are a terse assistant.' },
    { role: 'user', content: 'Tell me a story about a dragon.' },
  ];
  const c1 = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
  const m1 = c1.choices[0]?.message;
  check(c1.object === 'chat.completion' && /^chatcmpl-[0-9a-f]+$/.test(c1.id) && Number.isInteger(c1.created) &&
    c1.model === model && c1.choices.length === 1 && m1.role === 'assistant' && typeof m1.content === 'string' &&
    ['stop', 'length'].includes(c1.choices[0].finish_reason), 'chat completion is well-formed');
  check(c1.usage.prompt_tokens > 0 && c1.usage.completion_tokens > 0 &&
    c1.usage.total_tokens === c1.usage.prompt_tokens + c1.usage.completion_tokens &&
    Number.isInteger(c1.usage.prompt_tokens_details?.cached_tokens), 'chat usage');

  const s1 = await collectChat(await client.chat.completions.create({
    model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  check(s1.role === 'assistant' && s1.chunks > 2 && s1.ids.size === 1, 'chat stream: role first, one id');
  check(s1.text === m1.content, `chat: streamed text equals non-streamed text at temperature 0 (${JSON.stringify(s1.text)})`);
  check(s1.finish === c1.choices[0].finish_reason, 'chat stream finish_reason');
  check(s1.usage && s1.usage.completion_tokens === c1.usage.completion_tokens &&
    s1.usage.prompt_tokens === c1.usage.prompt_tokens, 'chat stream include_usage');

  const p1 = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
  check(p1.object === 'text_completion' && /^cmpl-[0-9a-f]+$/.test(p1.id) && typeof p1.choices[0].text === 'string' &&
    p1.choices[0].text.length > 0 && p1.usage.completion_tokens > 0 && p1.model === model, 'completion is well-formed');
  let t2 = '';
  let finish2 = null;
  for await (const chunk of await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 20, temperature: 0, stream: true })) {
    for (const ch of chunk.choices) {
      t2 += ch.text;
      if (ch.finish_reason) finish2 = ch.finish_reason;
    }
  }
  check(t2 === p1.choices[0].text && finish2 === p1.choices[0].finish_reason,
    'completions: streamed text equals non-streamed text at temperature 0');

  const seeded = { model, prompt: 'The dragon', max_tokens: 16, temperature: 1.0, seed: 42 };
  const q1 = await client.completions.create(seeded);
  let q2 = '';
  for await (const chunk of await client.completions.create({ ...seeded, stream: true })) {
    for (const ch of chunk.choices) q2 += ch.text;
  }
  check(q1.choices[0].text.length > 0 && q2 === q1.choices[0].text, 'seeded sampling: streamed equals non-streamed');

  const lp = await client.chat.completions.create({ model, messages, max_tokens: 5, temperature: 0,
    logprobs: true, top_logprobs: 2 });
  const content = lp.choices[0].logprobs?.content ?? [];
  check(content.length === lp.usage.completion_tokens && content.every((e) => typeof e.token === 'string' &&
    typeof e.logprob === 'number' && Array.isArray(e.bytes) && e.top_logprobs.length === 2), 'chat logprobs');

  try {
    await client.chat.completions.create({ model: 'no-such-model', messages });
    check(false, 'unknown model must fail');
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.status === 404, `unknown model -> NotFoundError (${e.status})`);
  }
  try {
    await client.chat.completions.create({ model, messages, n: 2 });
    check(false, 'n=2 must fail');
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400 && /n > 1 is not supported yet/.test(e.message),
      `n=2 -> BadRequestError (${e.message})`);
  }
} catch (e) {
  check(false, `unexpected exception: ${e?.stack ?? e}`);
}
process.exit(fails ? 1 : 0);
