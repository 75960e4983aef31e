/** Nest module for netmap-fanout: owns the replica runtime's lifecycle inside a Nest application. */
import {
  Inject,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { NetmapFanoutRuntime, type FanoutRuntimeOptions } from './netmap-fanout.runtime.js';

export const FANOUT_RUNTIME = Symbol('FANOUT_RUNTIME');

class FanoutLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(FANOUT_RUNTIME) private readonly runtime: NetmapFanoutRuntime) {}
  async onModuleInit(): Promise<void> {
    await this.runtime.start();
  }
  async onApplicationShutdown(): Promise<void> {
    await this.runtime.stop();
  }
}

@Module({})
export class NetmapFanoutModule {
  static forRoot(opts: FanoutRuntimeOptions): DynamicModule {
    return {
      module: NetmapFanoutModule,
      providers: [
        { provide: FANOUT_RUNTIME, useFactory: () => new NetmapFanoutRuntime(opts) },
        FanoutLifecycle,
      ],
      exports: [FANOUT_RUNTIME],
    };
  }
}
