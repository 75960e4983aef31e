/** Nest module for netmap-fanout: owns the replica runtime's lifecycle inside a Nest application. */
import { runtimeModule } from '@switchboard/nest';
import type { DynamicModule } from '@nestjs/common';
import { NetmapFanoutRuntime, type FanoutRuntimeOptions } from './netmap-fanout.runtime.js';

export const FANOUT_RUNTIME = Symbol('FANOUT_RUNTIME');

export const NetmapFanoutModule = {
  forRoot: (opts: FanoutRuntimeOptions): DynamicModule =>
    runtimeModule('NetmapFanoutModule', FANOUT_RUNTIME, () => new NetmapFanoutRuntime(opts)),
};
