/**
 * Every supported family, registered in the order the README lists them. A new family is one
 * file next to these and one line here.
 */
import { bert } from './bert';
import { distilbert } from './distilbert';
import { electra } from './electra';
import { gpt2 } from './gpt2';
import { llama } from './llama';
import { mistral } from './mistral';
import { qwen2 } from './qwen2';
import { registerFamily } from './registry';
import { roberta } from './roberta';

for (const family of [bert, roberta, distilbert, electra, gpt2, llama, qwen2, mistral]) registerFamily(family);

export * from './registry';
