/**
 * The one Nest building block the services share: a module that owns a service runtime's lifecycle
 * (start on module init, stop on application shutdown) and exports the runtime under a token. Every
 * service module is this shape, so it is written once here.
 */
import 'reflect-metadata';
import {
  Inject,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';

export interface ServiceRuntime {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A dynamic module named `name` providing `token` (the runtime made by `create`) with its lifecycle. */
export function runtimeModule<R extends ServiceRuntime>(
  name: string,
  token: symbol,
  create: () => R,
): DynamicModule {
  class Lifecycle implements OnModuleInit, OnApplicationShutdown {
    constructor(@Inject(token) private readonly runtime: R) {}
    async onModuleInit(): Promise<void> {
      await this.runtime.start();
    }
    async onApplicationShutdown(): Promise<void> {
      await this.runtime.stop();
    }
  }
  @Module({})
  class RuntimeHost {}
  Object.defineProperty(RuntimeHost, 'name', { value: name });
  return {
    module: RuntimeHost,
    providers: [{ provide: token, useFactory: create }, Lifecycle],
    exports: [token],
  };
}
