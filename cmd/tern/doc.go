// Command tern is the Tern messaging server and its tools, in one binary.
//
//	tern serve     run a node (embedded single node by default)
//	tern bench     drive simulated devices against a running node
//	tern backup    stream a snapshot of a running node's embedded store
//	tern restore   unpack a snapshot into an empty data directory
//	tern version   print the version
//
// Every flag has a TERN_* environment twin (--data-dir is TERN_DATA_DIR);
// a flag on the command line wins over the environment. The adapters are
// picked here, with a plain switch, and handed to package server.
package main
