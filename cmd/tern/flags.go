package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// errUsage means the flag package already printed what was wrong.
var errUsage = errors.New("usage")

// flagSet wraps flag.FlagSet so that every flag reads its default from a
// TERN_* variable, and --help lists that variable.
type flagSet struct {
	*flag.FlagSet
	prefix string // of the environment variables: TERN_ or TERN_BENCH_
	envErr []error
}

func newFlagSet(name, envPrefix string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &flagSet{FlagSet: fs, prefix: envPrefix}
}

func (f *flagSet) envName(flagName string) string {
	return f.prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *flagSet) env(name string) (string, bool) {
	return os.LookupEnv(f.envName(name))
}

func (f *flagSet) usage(name, u string) string { return u + " (" + f.envName(name) + ")" }

func (f *flagSet) String(p *string, name, def, u string) {
	if v, ok := f.env(name); ok {
		def = v
	}
	f.StringVar(p, name, def, f.usage(name, u))
}

func (f *flagSet) Int(p *int, name string, def int, u string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErr = append(f.envErr, fmt.Errorf("%s=%q: not an integer", f.envName(name), v))
		} else {
			def = n
		}
	}
	f.IntVar(p, name, def, f.usage(name, u))
}

func (f *flagSet) Float(p *float64, name string, def float64, u string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.envErr = append(f.envErr, fmt.Errorf("%s=%q: not a number", f.envName(name), v))
		} else {
			def = n
		}
	}
	f.Float64Var(p, name, def, f.usage(name, u))
}

func (f *flagSet) Bool(p *bool, name string, def bool, u string) {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErr = append(f.envErr, fmt.Errorf("%s=%q: not a boolean", f.envName(name), v))
		} else {
			def = b
		}
	}
	f.BoolVar(p, name, def, f.usage(name, u))
}

func (f *flagSet) Duration(p *time.Duration, name string, def time.Duration, u string) {
	if v, ok := f.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErr = append(f.envErr, fmt.Errorf("%s=%q: not a duration", f.envName(name), v))
		} else {
			def = d
		}
	}
	f.DurationVar(p, name, def, f.usage(name, u))
}

// parse parses args, reporting bad environment values first.
func (f *flagSet) parse(args []string) error {
	if len(f.envErr) > 0 {
		return errors.Join(f.envErr...)
	}
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return errUsage
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", f.Args())
	}
	return nil
}
