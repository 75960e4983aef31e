/** Entry point of a forked load-generator worker process (see worker.ts). */
import { runWorker } from './worker.js';

runWorker();
