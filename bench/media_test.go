package bench

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/internal/node"
	"github.com/tern-im/tern/media/s3"
	"github.com/tern-im/tern/media/s3/s3test"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
)

// TestMain stops the S3 server TestMediaS3 may have started (on Linux it
// would die with the test process anyway; elsewhere it would not).
func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"1048576", 1 << 20},
		{"0", 0},
		{"1MiB", 1 << 20},
		{"64MiB", 64 << 20},
		{"64 MiB", 64 << 20},
		{" 64mib ", 64 << 20},
		{"512KiB", 512 << 10},
		{"1.5GiB", 3 << 29},
		{"2TiB", 2 << 40},
		{"100B", 100},
		{"1kB", 1000},
		{"1.5MB", 1500000},
		{"3GB", 3e9},
	} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "1M", "1 mebibyte", "0.1KiB", "1.2.3MiB", "9999999TiB", "1e6", "."} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{
		1 << 20: "1MiB", 64 << 20: "64MiB", 512 << 10: "512KiB", 3 << 30: "3GiB",
		1<<20 + 1: "1.00MiB", 1000: "1000B", 0: "0B",
	} {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", in, got, want)
		}
	}
	// What FormatSize writes, ParseSize reads back.
	for _, n := range []int64{1 << 20, 64 << 20, 512 << 10, 1000, 3 << 30} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestMediaConfig(t *testing.T) {
	c, err := Config{Mode: ModeMedia}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.MediaSize != DefaultMediaSize || c.MediaCount != DefaultMediaCount || c.MediaParallel != DefaultMediaParallel {
		t.Errorf("defaults %+v", c)
	}
	c, err = Config{Mode: ModeMedia, MediaCount: 3, MediaParallel: 8}.withDefaults()
	if err != nil || c.MediaParallel != 3 {
		t.Errorf("parallel %d over 3 files, %v: want 3", c.MediaParallel, err)
	}
	for _, bad := range []Config{
		{Mode: ModeMedia, MediaSize: -1},
		{Mode: ModeMedia, MediaCount: -1},
		{Mode: ModeMedia, MediaParallel: MaxMediaParallel + 1},
		{Mode: ModeMedia, MediaParallel: -2},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestPayload: a file reads the same whatever the buffer sizes, again
// after a seek, and differs from the run's other files; Len counts down.
func TestPayload(t *testing.T) {
	src := newPayloadSource(42)
	const size = 3*payloadChunk + 12345
	whole, err := io.ReadAll(src.file(7, size))
	if err != nil || len(whole) != size {
		t.Fatalf("read %d bytes, %v", len(whole), err)
	}
	p := src.file(7, size)
	var odd bytes.Buffer
	buf := make([]byte, 10007) // straddles the chunks
	for {
		if p.Len() != size-odd.Len() {
			t.Fatalf("Len %d after %d bytes", p.Len(), odd.Len())
		}
		n, err := p.Read(buf)
		odd.Write(buf[:n])
		if err == io.EOF {
			break
		}
	}
	if !bytes.Equal(odd.Bytes(), whole) {
		t.Error("the same file read with another buffer size differs")
	}
	if pos, err := p.Seek(payloadChunk+5, io.SeekStart); err != nil || pos != payloadChunk+5 {
		t.Fatalf("seek: %d, %v", pos, err)
	}
	rest, _ := io.ReadAll(p)
	if !bytes.Equal(rest, whole[payloadChunk+5:]) {
		t.Error("reading after a seek differs")
	}
	if other, _ := io.ReadAll(src.file(8, size)); bytes.Equal(other, whole) {
		t.Error("files 7 and 8 are the same")
	}
	if again, _ := io.ReadAll(newPayloadSource(42).file(7, size)); !bytes.Equal(again, whole) {
		t.Error("the same seed gives another file")
	}
}

func runMedia(t *testing.T, n *servertest.Node, cfg Config) (Report, string, error) {
	t.Helper()
	cfg.Mode, cfg.Addr, cfg.CodeSource, cfg.Concurrency = ModeMedia, n.URL, n.SMS.Code, 2
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, cfg, &out)
	t.Logf("output:\n%s", out.String())
	return rep, out.String(), err
}

func checkMedia(t *testing.T, rep Report, files int, size int64) {
	t.Helper()
	m := rep.Media
	if m == nil {
		t.Fatal("no media report")
	}
	if m.Mismatches != 0 {
		t.Errorf("%d mismatches: %s", m.Mismatches, m.FirstMismatch)
	}
	for _, p := range []MediaPhase{m.Upload, m.Download} {
		if p.Files != files || p.Bytes != int64(files)*size || p.MiBPerSec <= 0 || p.PerFile.Count != uint64(files) {
			t.Errorf("phase: %d files, %d bytes, %.1f MiB/s, %d timed; want %d files of %d bytes",
				p.Files, p.Bytes, p.MiBPerSec, p.PerFile.Count, files, size)
		}
		checkOrdered(t, "per file", p.PerFile)
		s := p.Server
		// At least the readings before and after.
		if s.Samples < 2 || s.RSSBefore <= 0 || s.RSSMax < s.RSSBefore || s.RSSAfter <= 0 || s.ScrapeFailures != 0 || len(s.RSSSeries) != s.Samples {
			t.Errorf("server: %+v", s)
		}
	}
	if rep.ServerBefore == nil || rep.Server.RSSBytes <= 0 || rep.Bench.CPUSeconds <= 0 {
		t.Errorf("server before %v, at end %+v, bench %+v", rep.ServerBefore, rep.Server, rep.Bench)
	}
}

// TestMedia runs media mode against a node keeping its files on disk
// (media fs), which serves the links itself. The size is not a multiple
// of the payload's chunks, and two transfers run at once.
func TestMedia(t *testing.T) {
	n := startNode(t)
	const size = 300<<10 + 5
	rep, out, err := runMedia(t, n, Config{MediaSize: size, MediaCount: 4, MediaParallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkMedia(t, rep, 4, size)
	if m := rep.Media; !m.ServedByNode || m.DownloadHost != n.Addr || m.Parallel != 2 || m.Kind != "document" {
		t.Errorf("served by node %v (%s), parallel %d, kind %s", m.ServedByNode, m.DownloadHost, m.Parallel, m.Kind)
	}
	for _, want := range []string{"mode=media", "media-size=307205B", "media-count=4", "media-parallel=2",
		"downloads served by", "the node", "upload", "download", "rss max", "mismatches", "peak rss"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestMediaS3 runs media mode against a node keeping its files on S3:
// the links point at S3, so the downloads do not touch the node.
func TestMediaS3(t *testing.T) {
	c := s3test.New(t)
	n := servertest.Start(t, servertest.Options{Engines: node.Config{Media: node.MediaS3,
		S3: s3.Options{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Region: c.Region,
			Bucket: c.Bucket, Prefix: c.Prefix}}})
	rep, out, err := runMedia(t, n, Config{MediaSize: 1 << 20, MediaCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkMedia(t, rep, 2, 1<<20)
	if m := rep.Media; m.ServedByNode || m.DownloadHost == n.Addr {
		t.Errorf("downloads served by %s, by the node %v: want S3", m.DownloadHost, m.ServedByNode)
	}
	if !strings.Contains(out, "not the node") {
		t.Error("output does not say the node served no download")
	}
}

// TestMediaLimits: the server's upload quota and size limit end the run
// with an error that names the server flag to change.
func TestMediaLimits(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{UploadsPerUserHour: 2}})
	_, _, err := runMedia(t, n, Config{MediaSize: 1 << 10, MediaCount: 3})
	if err == nil || !strings.Contains(err.Error(), "--uploads-per-user-hour") {
		t.Errorf("over the quota: %v", err)
	}
	n = servertest.Start(t, servertest.Options{Server: server.Config{MediaLimits: map[string]int64{"document": 100 << 10}}})
	_, _, err = runMedia(t, n, Config{MediaSize: 200 << 10, MediaCount: 1})
	if err == nil || !strings.Contains(err.Error(), "--max-document-bytes") {
		t.Errorf("over the size limit: %v", err)
	}
}
