package fcm_test

import (
	"fmt"
	"testing"

	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/fcm"
	"github.com/tern-im/tern/push/fcm/fcmtest"
)

// BenchmarkNotifyAll measures pushes through the FCM path (the Firebase
// SDK, its HTTP/1.1 client and OAuth token, to the local fake) in batches
// of 100, as the server's sendLoop claims them: pushes/s is what one node
// could hand to FCM, bounded here by the SDK and the fake sharing the box.
func BenchmarkNotifyAll(b *testing.B) {
	f := fcmtest.Start(b)
	n, err := fcm.New(b.Context(), fcm.Config{CredentialsFile: f.CredentialsFile(), Endpoint: f.Endpoint()})
	if err != nil {
		b.Fatal(err)
	}
	ns := make([]push.Notification, 100)
	for i := range ns {
		ns[i] = push.Notification{Provider: push.ProviderFCM, Token: fmt.Sprintf("tok-%d", i), Kind: push.KindMessage,
			ChatID: "c1", MsgID: fmt.Sprintf("m%d", i), From: "u1"}
	}
	pushes := 0
	for b.Loop() {
		for i, err := range n.NotifyAll(b.Context(), ns) {
			if err != nil {
				b.Fatalf("push %d: %v", i, err)
			}
		}
		pushes += len(ns)
	}
	b.ReportMetric(float64(pushes)/b.Elapsed().Seconds(), "pushes/s")
}
