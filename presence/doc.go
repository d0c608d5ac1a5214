// Package presence keeps which users are online anywhere in the cluster,
// for the online / last seen a user's followers see.
//
// Each node counts its own sessions per user and tells the other nodes when
// a user's count there goes from 0 to 1 or back (one broadcast per change,
// Tracker.Connect and Disconnect return it), so a node knows, for every
// user, whether some node holds one of its devices, without any store read.
// The messages carry the sending node's boot id and a version that grows
// with every change: a node that sees a version it did not expect (it
// missed a message, or joined late, or the other node restarted) asks for
// a snapshot of that node's users and replaces what it had. Nodes also send
// a heartbeat; a node not heard from for the lease is dead, and its users
// are offline from then on (their last seen is the last heartbeat), so a
// killed node does not leave its users online forever.
//
// The package has no transport: the server broadcasts the Msg values it is
// handed and feeds received ones to Apply. It also knows nothing of
// privacy: who may see a change is the server's business.
package presence
