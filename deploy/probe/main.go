// Command tern-probe is the health check of Tern's container image, which
// (distroless, no shell) has no curl or wget: it GETs a URL and exits 0 on a
// 200 answer, 1 on anything else. With -sleep it only sleeps, which serves
// as a Kubernetes preStop hook on clusters without the native sleep action.
//
//	tern-probe                                   # http://127.0.0.1:8080/readyz
//	tern-probe -url http://127.0.0.1:8080/healthz
//	tern-probe -sleep 10s
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/readyz", "URL to GET; healthy when it answers 200")
	timeout := flag.Duration("timeout", 3*time.Second, "give up after this long")
	insecure := flag.Bool("insecure", false, "skip TLS certificate checks (for probing a node's own --tls-cert on loopback)")
	sleep := flag.Duration("sleep", 0, "only sleep this long, then exit 0 (a preStop hook)")
	flag.Parse()
	if *sleep > 0 {
		time.Sleep(*sleep)
		return
	}
	if err := check(*url, *timeout, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "tern-probe:", err)
		os.Exit(1)
	}
}

// check answers nil when url answers 200 within timeout.
func check(url string, timeout time.Duration, insecure bool) error {
	tr := &http.Transport{DisableKeepAlives: true}
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // a node probing itself on loopback
	}
	c := &http.Client{Timeout: timeout, Transport: tr}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
