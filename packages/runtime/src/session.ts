/**
 * onnxruntime sessions on the best provider available: with `auto`, CUDA is tried first and the
 * CPU provider used when CUDA cannot start (no GPU, or onnxruntime-node installed without its
 * CUDA libraries); the caller is told which provider runs and why it fell back.
 */
import * as ort from 'onnxruntime-node';

export type Device = 'auto' | 'cpu' | 'cuda';
export type Provider = 'cuda' | 'cpu';

export const DEVICES: readonly Device[] = ['auto', 'cpu', 'cuda'];

// onnxruntime prints a native error line when the CUDA library is missing, before the exception
// we handle; keep its logger quiet unless asked (errors still arrive as exceptions). The level is
// read once per process, when the first session starts, and importing transformers.js resets it,
// so it is set again before every session.
function quietLogger(): void {
  if (!process.env.ZEROLM_ORT_LOG) ort.env.logLevel = 'fatal';
}
quietLogger();

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: Provider;
  /** Why `auto` did not get CUDA. */
  fallbackReason?: string;
}

/** Whether CUDA could not start in this process (remembered so later sessions do not retry). */
let cudaFailure: string | undefined;

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

async function create(model: string | Uint8Array, provider: Provider, options: ort.InferenceSession.SessionOptions) {
  const sessionOptions = { ...options, executionProviders: [provider] };
  quietLogger();
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, sessionOptions)
    : ort.InferenceSession.create(model, sessionOptions);
}

export async function openSession(
  model: string | Uint8Array,
  device: Device = 'auto',
  options: ort.InferenceSession.SessionOptions = {},
): Promise<OpenedSession> {
  if (!DEVICES.includes(device)) throw new Error(`unknown device "${device}" (known: ${DEVICES.join(', ')})`);
  if (device !== 'cpu' && cudaFailure === undefined) {
    try {
      return { session: await create(model, 'cuda', options), provider: 'cuda' };
    } catch (error) {
      cudaFailure = firstLine(error);
    }
  }
  if (device === 'cuda') throw new Error(`the CUDA provider of onnxruntime cannot start: ${cudaFailure}`);
  const session = await create(model, 'cpu', options);
  return device === 'auto' ? { session, provider: 'cpu', fallbackReason: cudaFailure } : { session, provider: 'cpu' };
}

export { ort };
