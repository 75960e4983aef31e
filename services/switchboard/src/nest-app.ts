/**
 * Builds a Nest application context from service modules: each service's module owns its runtime's
 * start (onModuleInit) and stop (onApplicationShutdown). `serve` mounts all four, `service NAME` one.
 */
import 'reflect-metadata';
import { Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

@Module({})
class SwitchboardAppModule {
  static forRoot(imports: DynamicModule[]): DynamicModule {
    return { module: SwitchboardAppModule, imports };
  }
}

/** Creates and initialises the context: every module's runtime is started, in the given order. */
export async function startNestApp(modules: DynamicModule[]): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(SwitchboardAppModule.forRoot(modules), {
    logger: false,
    abortOnError: false,
  });
  await app.init();
  return app;
}

export function runtimeOf<T>(app: INestApplicationContext, token: symbol): T {
  return app.get<T>(token, { strict: false });
}
