package bench

import (
	"os"
	"strconv"
	"strings"
)

// machineSample is the whole machine's CPU counters (Linux /proc/stat,
// in clock ticks) and load average; zero where unavailable. The bench
// and, usually, the server share the machine with whatever else runs on
// it, and a report should say how busy it was.
type machineSample struct {
	busy, total uint64
	load1       float64
}

func sampleMachine() machineSample {
	var m machineSample
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		fields := strings.Fields(line)
		if len(fields) > 5 && fields[0] == "cpu" {
			for i, f := range fields[1:] {
				v, _ := strconv.ParseUint(f, 10, 64)
				if i >= 8 { // guest time is already counted in user time
					break
				}
				m.total += v
				if i != 3 && i != 4 { // idle, iowait
					m.busy += v
				}
			}
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			m.load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

// MachineReport tells how busy the machine was over the measured window.
type MachineReport struct {
	// BusyCores is the CPU every process on the machine used, in cores.
	BusyCores float64 `json:"busy_cores"`
	// OtherCores is BusyCores less the server's and the bench's: other
	// processes, and the kernel's work for everyone (meaningful only when
	// the server runs on this machine).
	OtherCores float64 `json:"other_cores"`
	LoadStart  float64 `json:"load_avg_1m_start"`
	LoadEnd    float64 `json:"load_avg_1m_end"`
}

func machineReport(a, b machineSample, cpus int, server, bench float64) MachineReport {
	r := MachineReport{LoadStart: a.load1, LoadEnd: b.load1}
	if b.total > a.total {
		r.BusyCores = float64(b.busy-a.busy) / float64(b.total-a.total) * float64(cpus)
		r.OtherCores = max(0, r.BusyCores-server-bench)
	}
	return r
}
