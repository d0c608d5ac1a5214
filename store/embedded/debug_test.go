package embedded_test

import (
	"testing"
	"time"

	"github.com/tern-im/tern/store/embedded"
)

func BenchmarkDebugSend(b *testing.B) {
	embedded.DebugBatches.Store(0); embedded.DebugReqs.Store(0); embedded.DebugNanos.Store(0); embedded.DebugCommit.Store(0)
	BenchmarkSend(b)
	n := embedded.DebugBatches.Load()
	b.Logf("batches %d avg size %.1f avg batch time %v avg commit %v", n, float64(embedded.DebugReqs.Load())/float64(n), time.Duration(embedded.DebugNanos.Load()/n), time.Duration(embedded.DebugCommit.Load()/n))
}
