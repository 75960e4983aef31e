/** Nest module for policy-compiler. */
import {
  Inject,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { PolicyCompilerRuntime, type PolicyRuntimeOptions } from './policy-compiler.runtime.js';

export const POLICY_RUNTIME = Symbol('POLICY_RUNTIME');

class PolicyLifecycle implements OnModuleInit, OnApplicationShutdown {
  constructor(@Inject(POLICY_RUNTIME) private readonly runtime: PolicyCompilerRuntime) {}
  async onModuleInit(): Promise<void> {
    await this.runtime.start();
  }
  async onApplicationShutdown(): Promise<void> {
    await this.runtime.stop();
  }
}

@Module({})
export class PolicyCompilerModule {
  static forRoot(opts: PolicyRuntimeOptions): DynamicModule {
    return {
      module: PolicyCompilerModule,
      providers: [
        { provide: POLICY_RUNTIME, useFactory: () => new PolicyCompilerRuntime(opts) },
        PolicyLifecycle,
      ],
      exports: [POLICY_RUNTIME],
    };
  }
}
