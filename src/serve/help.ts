// `weft serve --help` (also `weft help serve`): the server's own flags, then the etcd flags
// every command shares.
import { GLOBAL_FLAGS } from '../store/etcd-flags.js';

export const SERVE_HELP = `Usage: weft serve [flags]

Serves weft's resources (group weft.io, version v1alpha1: networks, subnets, leases and
read-only nodes) over HTTPS with the Kubernetes API conventions, so kubectl and Kubernetes
clients manage the networks in etcd. Writes go through the same validation, planning and
transactions as weft apply and weft delete. See docs/kubectl.md.

Flags:
      --bind-address IP         address to listen on (default 127.0.0.1)
      --secure-port N           port to listen on (default 6443; 0 picks a free one)
      --tls-cert-file FILE      serving certificate (PEM); without it and the key, a
      --tls-private-key-file F  self-signed one is made for the bind address and localhost
      --client-ca-file FILE     accept client certificates signed by these CAs (user = CN,
                                groups = O)
      --token-auth-file FILE    static tokens, kube-apiserver's CSV: token,user,uid,"g1,g2"
                                (without it, a token for user weft-admin is generated)
      --write-kubeconfig FILE   write a kubeconfig for this server (URL, CA, admin token)
      --log-level LEVEL         debug, info, warn or error (default info)

Anonymous requests get 401; members of group weft:admins may write, other users only read.

${GLOBAL_FLAGS}`;
