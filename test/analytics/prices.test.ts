import { describe, expect, it } from 'vitest';
import { costOf, MODEL_PRICES, priceOf } from '../../src/analytics/prices.js';

describe('LLM price table', () => {
  it('matches dated, suffixed and provider-prefixed names to the longest family', () => {
    expect(priceOf('gpt-4o')).toBe(MODEL_PRICES['gpt-4o']);
    expect(priceOf('GPT-4o-2024-08-06')).toBe(MODEL_PRICES['gpt-4o']);
    expect(priceOf('gpt-4o-mini-2024-07-18')).toBe(MODEL_PRICES['gpt-4o-mini']);
    expect(priceOf('openai/gpt-4.1-mini')).toBe(MODEL_PRICES['gpt-4.1-mini']);
    expect(priceOf('claude-sonnet-4-20250514')).toBe(MODEL_PRICES['claude-sonnet-4']);
    expect(priceOf('claude-3-5-sonnet@20241022')).toBe(MODEL_PRICES['claude-3-5-sonnet']);
  });

  it('knows no price for unknown models or a family name followed by other letters', () => {
    expect(priceOf('unknown')).toBeUndefined();
    expect(priceOf('in-house-7b')).toBeUndefined();
    expect(priceOf('gpt-4oz')).toBeUndefined();
  });

  it('bills cached tokens at the cached rate, as part of the prompt tokens', () => {
    const price = { promptPerMillion: 2.5, completionPerMillion: 10, cachedPerMillion: 1.25 };
    // 600 uncached prompt, 400 cached, 200 completion tokens.
    expect(costOf(price, { prompt: 1000, cached: 400, completion: 200 })).toBeCloseTo(
      (600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6,
      12,
    );
    expect(costOf(price, { prompt: 0, cached: 0, completion: 0 })).toBe(0);
    // More cached than prompt tokens (another provider's convention): never a negative prompt.
    expect(costOf(price, { prompt: 10, cached: 20, completion: 0 })).toBeCloseTo((20 * 1.25) / 1e6, 12);
  });

  it('lists prices as positive numbers per million tokens, cached no dearer than uncached', () => {
    for (const [family, price] of Object.entries(MODEL_PRICES)) {
      expect(family).toBe(family.toLowerCase());
      expect(price.promptPerMillion).toBeGreaterThan(0);
      expect(price.completionPerMillion).toBeGreaterThan(0);
      expect(price.cachedPerMillion).toBeLessThanOrEqual(price.promptPerMillion);
    }
  });
});
