import type { ICruiseOptions, IForbiddenRuleType } from 'dependency-cruiser';

/** The floors of src/, lowest first (see .dependency-cruiser.mjs). */
export declare const FLOORS: ReadonlyArray<{ name: string; path: string; job: string }>;

declare const config: { forbidden: IForbiddenRuleType[]; options: ICruiseOptions };
export default config;
