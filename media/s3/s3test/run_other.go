//go:build !linux

package s3test

import "os/exec"

// run starts cmd and returns a channel closed when it has exited. Only
// Linux can have the child killed when this process ends; elsewhere Stop
// must end it.
func run(cmd *exec.Cmd) (<-chan struct{}, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return exited, nil
}

// sweepStale does nothing: elsewhere a server outlives its killed test
// process, and its directory is still in use.
func sweepStale() {}
