/**
 * What LLM calls cost, for the responses (`llm_feedback_received`) that do not
 * report their own `cost_usd`. A reported cost always wins over this table.
 *
 * Prices are USD per 1 million tokens, the vendors' public list prices for
 * standard (non-batch) requests as published in mid-2025; contracts, batch
 * discounts and long-context surcharges are not modelled. Edit the table to match
 * what you pay: costs are computed when analytics are read, from token sums kept
 * at write time, so a corrected price applies to past events too.
 *
 * Token conventions (OpenAI's): `prompt_tokens` includes `cached_tokens`, which
 * are billed at the cached rate instead of the prompt rate; `completion_tokens`
 * includes `reasoning_tokens`, billed as completion.
 */
export interface ModelPrice {
  /** USD per 1M uncached prompt (input) tokens. */
  promptPerMillion: number;
  /** USD per 1M completion (output) tokens, reasoning included. */
  completionPerMillion: number;
  /** USD per 1M prompt tokens served from the provider's cache. */
  cachedPerMillion: number;
}

const price = (prompt: number, completion: number, cached: number): ModelPrice => ({
  promptPerMillion: prompt,
  completionPerMillion: completion,
  cachedPerMillion: cached,
});

/** Keyed by lowercase model family; a dated or suffixed name (`gpt-4o-2024-08-06`) matches its family. */
export const MODEL_PRICES: Readonly<Record<string, ModelPrice>> = {
  'gpt-4o': price(2.5, 10, 1.25),
  'gpt-4o-mini': price(0.15, 0.6, 0.075),
  'gpt-4.1': price(2, 8, 0.5),
  'gpt-4.1-mini': price(0.4, 1.6, 0.1),
  'gpt-4.1-nano': price(0.1, 0.4, 0.025),
  'o3-mini': price(1.1, 4.4, 0.55),
  'o4-mini': price(1.1, 4.4, 0.275),
  'claude-3-5-haiku': price(0.8, 4, 0.08),
  'claude-3-5-sonnet': price(3, 15, 0.3),
  'claude-3-7-sonnet': price(3, 15, 0.3),
  'claude-sonnet-4': price(3, 15, 0.3),
  'claude-opus-4': price(15, 75, 1.5),
  'gemini-1.5-pro': price(1.25, 5, 0.3125),
  'gemini-2.0-flash': price(0.1, 0.4, 0.025),
};

/**
 * The price of `model`: case-insensitive, without a provider prefix
 * (`openai/gpt-4o`), matching the longest family that is the whole name or is
 * followed by `-`, `@` or `:` (`gpt-4o-mini-2024-07-18` is `gpt-4o-mini`, not `gpt-4o`).
 * @returns undefined for a model the table does not know.
 */
export function priceOf(model: string, prices: Readonly<Record<string, ModelPrice>> = MODEL_PRICES) {
  const name = model.trim().toLowerCase().replace(/^.*\//, '');
  let best: string | undefined;
  for (const family of Object.keys(prices)) {
    const matches = name === family || (name.startsWith(family) && /[-@:]/.test(name[family.length] ?? ''));
    if (matches && (best === undefined || family.length > best.length)) best = family;
  }
  return best === undefined ? undefined : prices[best];
}

/** Token sums to price; `cached` is the part of `prompt` served from the provider's cache. */
export interface TokenCounts {
  prompt: number;
  completion: number;
  cached: number;
}

/** USD for `tokens` at `price`; cached tokens are part of the prompt tokens and billed at the cached rate. */
export function costOf(price: ModelPrice, tokens: TokenCounts): number {
  const uncachedPrompt = Math.max(0, tokens.prompt - tokens.cached);
  return (
    (uncachedPrompt * price.promptPerMillion +
      tokens.cached * price.cachedPerMillion +
      tokens.completion * price.completionPerMillion) /
    1_000_000
  );
}
