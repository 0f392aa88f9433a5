/**
 * @zerolm/adapters: everything that turns an outside description of a transformer into the
 * module graph. Architecture specs live in `specs/`, Hugging Face model folders in `hf/`.
 */
export * from './specs';
export * from './hf';
export * from './load';
