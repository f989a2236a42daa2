// Help texts: `weft --help` and `weft COMMAND --help`.
import { GLOBAL_FLAGS } from '../store/etcd-flags.js';
import { SERVE_HELP } from '../serve/help.js';

export const HELP: Record<string, string> = {
  serve: SERVE_HELP,
  '': `weft: a Flannel-compatible overlay network, declared as Kubernetes-style resources in etcd.

Usage: weft COMMAND [flags]

Commands:
  apply     create or update resources from YAML (-f FILE|DIR|-)
  get       list or show networks, subnets, leases and nodes
  describe  everything about one lease: its key, etcd lease, reservation and node status
  delete    delete resources by name or from YAML
  diff      show what apply would change (exit 0 no change, 1 changes)
  agent     run the per-node agent (see weft agent --help)
  serve     serve the resources as a Kubernetes API for kubectl (see weft serve --help)
  version   print the version

Kinds (group weft.io, version v1alpha1): Network, Subnet (a reservation), Lease, and
Node (read-only: each running agent publishes its own status).
Exit codes: 0 success, 1 user error (invalid input, conflict, not found, refused),
2 etcd unreachable or other failure.

${GLOBAL_FLAGS}`,
  apply: `Usage: weft apply -f FILE|DIR|- [-R] [--dry-run] [--force]

Validates every document first (CRD schemas in crds/ and Flannel's rules) and writes
nothing if any is invalid; then writes each object in one etcd transaction, Networks
before Subnets, printing "network.weft.io/NAME created|configured|unchanged".
A metadata.resourceVersion in the input must match the live object (else a conflict).
Leases cannot be applied: agents write them; reserve a subnet with kind Subnet.

Flags:
  -f, --filename PATH   file, directory or - for stdin (repeatable)
  -R, --recursive       read directories recursively
      --dry-run         validate against the live state; write nothing
      --force           allow a Network change that leaves existing subnets outside it

${GLOBAL_FLAGS}`,
  get: `Usage: weft get networks|subnets|leases|nodes [NAME] [-o table|wide|yaml|json|name] [--network NAME]

Kinds: networks (net), subnets (sn), leases, nodes (no). NAME shows one object.
"leases -o wide" adds each holder's status: READY (yes, no, or unknown when the host
publishes no readable record), PEERS (programmed/desired), LAST-SYNC and VERSION.
"nodes" lists the status records agents publish (also of nodes whose lease is gone); a
record vanishes when its agent stops, or about 30 s after it dies.
A lease key with an IPv6 half is named with that half as one label: the key
10.5.3.0-24&fd00:5:0:3::-64 is lease 10.5.3.0-24.fd00-5-0-3-0-0-0-0-64 (the key works too).

Flags:
  -o, --output FORMAT   table (default), wide, yaml, json or name
      --network NAME    only subnets/leases of this network

${GLOBAL_FLAGS}`,
  delete: `Usage: weft delete KIND NAME [NAME...] | weft delete -f FILE|DIR|- [-R]

Deleting a Network that still has leases or reservations is refused unless --force,
which deletes its config, leases, reservations and metadata in one transaction.
"weft delete lease 10.5.3.0-24" evicts a dead host's lease.

Flags:
  -f, --filename PATH     file, directory or - for stdin (repeatable)
  -R, --recursive         read directories recursively
      --network NAME      the network of a lease or subnet name (when several have it)
      --force             delete a Network together with its subnets
      --ignore-not-found  treat a missing object as deleted

${GLOBAL_FLAGS}`,
  describe: `Usage: weft describe lease NAME [--network NAME]

Prints everything about one lease: its key and value fields, its etcd lease (TTL left) or
that it is a reservation, the Subnet reserving it, and the status record of the node
holding it (ready or why not, peers programmed of desired, last sync, version).

Flags:
      --network NAME    the lease's network (when several have a lease of that name)

${GLOBAL_FLAGS}`,
  diff: `Usage: weft diff -f FILE|DIR|- [-R]

Prints a unified diff of each live object against what apply would make of it
(resourceVersion, uid, creationTimestamp and status left out). Exit 0 when nothing
would change, 1 when something would (or on a user error), 2 on failure.

Flags:
  -f, --filename PATH   file, directory or - for stdin (repeatable)
  -R, --recursive       read directories recursively

${GLOBAL_FLAGS}`,
  version: `Usage: weft version

Prints weft's version.
`,
};
