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

// envDefault returns the flag's default from its environment twin when set,
// parsed like the flag itself; a bad value is reported by parse, so that
// every mistake shows at once.
func envDefault[T any](f *flagSet, name string, def T, kind string, conv func(string) (T, error)) T {
	v, ok := f.env(name)
	if !ok {
		return def
	}
	x, err := conv(v)
	if err != nil {
		f.envErr = append(f.envErr, fmt.Errorf("%s=%q: not %s", f.envName(name), v, kind))
		return def
	}
	return x
}

func (f *flagSet) Int(p *int, name string, def int, u string) {
	f.IntVar(p, name, envDefault(f, name, def, "an integer", strconv.Atoi), f.usage(name, u))
}

func (f *flagSet) Float(p *float64, name string, def float64, u string) {
	conv := func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
	f.Float64Var(p, name, envDefault(f, name, def, "a number", conv), f.usage(name, u))
}

func (f *flagSet) Bool(p *bool, name string, def bool, u string) {
	f.BoolVar(p, name, envDefault(f, name, def, "a boolean", strconv.ParseBool), f.usage(name, u))
}

func (f *flagSet) Duration(p *time.Duration, name string, def time.Duration, u string) {
	f.DurationVar(p, name, envDefault(f, name, def, "a duration", time.ParseDuration), f.usage(name, u))
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
