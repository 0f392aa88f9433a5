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
import { qwen3 } from './qwen3';
import { smollm3 } from './smollm3';
import { granite } from './granite';
import { olmo2 } from './olmo2';
import { gemma2 } from './gemma2';
import { gemma3Text } from './gemma3-text';
import { xlmRoberta } from './xlm-roberta';
import { phi3 } from './phi3';
import { gptNeox } from './gpt-neox';
import { modernbert } from './modernbert';
import { nomicBert } from './nomic-bert';
import { mpnet } from './mpnet';

for (const family of [bert, roberta, distilbert, electra, xlmRoberta, mpnet, modernbert, nomicBert, gpt2, llama, qwen2, mistral, qwen3, smollm3, granite, olmo2, gemma2, gemma3Text, phi3, gptNeox]) {
  registerFamily(family);
}

export * from './registry';
