/** The legacy (pre-Noise) NaCl crypto_box control channel: box, routes, /key answer, map sealing. */
export * from './legacy-box.js';
export * from './legacy-channel.js';
