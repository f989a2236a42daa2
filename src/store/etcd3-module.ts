// The etcd3 package's values (its client and error classes), reached through one function.
//
// Why: loading etcd3 (grpc-js's channel stack, protobufjs's types for every etcd service) is
// ~25-30 ms of an agent's start, before anything else can run, and an agent whose reads go
// directly (direct-kv.ts) needs etcd3 only later, for its first write. The agent's bundle
// (build/bundle-agent.mjs) replaces this file with one that loads the package on the first
// call; unbundled (the CLI, the tests), it is loaded with this module, as any import.
import * as etcd3 from 'etcd3';

export type Etcd3Module = typeof etcd3;

export function etcd3Module(): Etcd3Module {
  return etcd3;
}

/** The package if it is loaded, else undefined (no error can then be one of its classes). */
export function etcd3IfLoaded(): Etcd3Module | undefined {
  return etcd3;
}
