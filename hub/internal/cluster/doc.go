// Package cluster lets several hub replicas run active/active: it keeps the set
// of live replicas with hashicorp/memberlist (encrypted gossip), decides which
// replica owns which cluster (consistent hashing with bounded loads over the
// live replicas, see Ring), and carries small broadcasts between replicas.
//
// # Ownership epochs
//
// Owner returns, with the owning replica, an epoch: a number that orders the
// claims replicas make on a cluster, so that an agent told about two owners can
// tell which claim is newer. The rule:
//
//   - Every replica keeps a counter c and publishes it in its memberlist node
//     metadata. It also remembers s, the highest counter it has seen published
//     by any replica, departed ones included.
//   - When the replica's member set changes (a replica joined, left or failed,
//     or restarted — its published counter went backwards), it sets
//     c = max(c, s) + 1 and publishes the new c. Nothing else changes c: a
//     higher counter learnt by gossip raises s, not c, so a replica whose view
//     is stale keeps its older, lower epoch.
//   - A replica's epoch is c<<32 | tag, where tag is a 32-bit hash of its node
//     name. Owner returns the owning replica's epoch: the local counter when the
//     local replica owns the cluster, otherwise the counter the owner last
//     published.
//
// Consequences:
//
//   - Two replicas never claim an agent with the same epoch: their tags differ
//     (a replica whose tag collides with a known replica's is refused at join).
//   - A replica that has seen the previous owner's failure or departure claims
//     with a higher epoch than any that owner had published to it.
//   - Replicas that agree on the member set and have each other's metadata
//     return the same (owner, epoch) for every cluster; a redirect to a replica
//     carries the epoch that replica itself claims with.
//
// The agent's side of the rule: keep the epoch of the owner it is streaming
// with and ignore a redirect or claim with a lower epoch while that stream is
// up; once the stream ends, follow the next owner whatever its epoch (a replica
// that restarted before anyone noticed it had gone starts low again).
//
// This is not consensus. While a partition lasts, each side assigns clusters
// over its own view; epochs only make the competing claims totally ordered, so
// an agent that hears both picks the same one every time. The counter part must
// stay below 2^32: one change a second lasts 136 years.
package cluster
