package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// errUsage means the mistake was already reported: run exits 2.
var errUsage = errors.New("usage")

// usageError is a mistake in the command line or in the environment: run
// prints it to stderr and exits 2, like the flag package's own errors, so
// that a script can tell "you called me wrong" from "I failed".
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// helpRequest is what parse returns for --help or -h: the help text, which
// run prints to stdout with exit status 0. Asking for help is not an error,
// and `tern serve --help | less` must work. (It travels as an error so that
// every command's parse call handles it with no code of its own.)
type helpRequest struct{ text string }

func (h *helpRequest) Error() string { return "help requested" }

// flagSet wraps flag.FlagSet so that every flag also reads a TERN_*
// environment variable (the command line wins), help lists flags as
// --flag with that variable and the default, and secrets can come from a
// file or the environment instead of the command line, which every user of
// the machine can read (ps, /proc/PID/cmdline).
type flagSet struct {
	*flag.FlagSet
	prefix  string          // of the environment variables: TERN_ or TERN_BENCH_
	secrets map[string]bool // flags whose value is never shown
	fileOf  map[string]string
	given   map[string]bool // set on the command line or from the environment
}

func newFlagSet(name, envPrefix string) *flagSet {
	f := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), prefix: envPrefix,
		secrets: map[string]bool{}, fileOf: map[string]string{}, given: map[string]bool{}}
	f.FlagSet.Usage = f.defaultUsage
	return f
}

func (f *flagSet) defaultUsage() {
	fmt.Fprintf(f.Output(), "Usage: %s [flags]\n\n%s", f.Name(), flagsHeader)
	f.PrintDefaults()
}

// flagsHeader introduces the flag list of every command's help.
const flagsHeader = "Flags (each also read from the environment variable shown; the command line wins):\n"

func (f *flagSet) envName(flagName string) string {
	return f.prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// The registration methods keep the built-in default as the flag's default
// (what --help shows) and parse applies the environment afterwards, so a
// secret in the environment never shows up as a default.

func (f *flagSet) String(p *string, name, def, u string) { f.StringVar(p, name, def, u) }
func (f *flagSet) Int(p *int, name string, def int, u string) {
	f.IntVar(p, name, def, u)
}
func (f *flagSet) Float(p *float64, name string, def float64, u string) {
	f.Float64Var(p, name, def, u)
}
func (f *flagSet) Bool(p *bool, name string, def bool, u string) { f.BoolVar(p, name, def, u) }
func (f *flagSet) Duration(p *time.Duration, name string, def time.Duration, u string) {
	f.DurationVar(p, name, def, u)
}

// secret marks the string flag name as a secret: its value is never shown
// (not in help, not in error messages), and it can be given as --NAME-file
// FILE or NAME's variable with _FILE (a file holding it, as Docker and
// Kubernetes secrets are mounted) as well as through its variable.
func (f *flagSet) secret(name string) {
	f.secrets[name] = true
	file := name + "-file"
	f.fileOf[name] = file
	f.FlagSet.String(file, "", "read --"+name+" from this file (surrounding white space ignored)")
}

// isGiven reports whether the flag was set on the command line or through
// its environment variable, rather than left at its default.
func (f *flagSet) isGiven(name string) bool { return f.given[name] }

// PrintDefaults lists the flags as --name, each with its variable and
// default. (The flag package prints -name, which the docs never use.)
func (f *flagSet) PrintDefaults() {
	w := f.Output()
	f.VisitAll(func(fl *flag.Flag) {
		if f.isFileTwin(fl.Name) {
			return // listed with its secret
		}
		arg, usage := flag.UnquoteUsage(fl)
		line := "  --" + fl.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, strings.ReplaceAll(usage, "\n", "\n        "))
		env := f.envName(fl.Name)
		if file, ok := f.fileOf[fl.Name]; ok {
			fmt.Fprintf(w, "        or --%s FILE, %s, %s (a secret: the command line shows in ps)\n",
				file, env, f.envName(file))
			return
		}
		if isZeroDefault(fl) {
			fmt.Fprintf(w, "        %s\n", env)
		} else {
			fmt.Fprintf(w, "        %s, default %s\n", env, fl.DefValue)
		}
	})
}

func (f *flagSet) isFileTwin(name string) bool {
	base, ok := strings.CutSuffix(name, "-file")
	return ok && f.fileOf[base] == name
}

func isZeroDefault(fl *flag.Flag) bool {
	switch fl.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}

// parse parses args, then fills every flag left unset from its
// environment variable. Every mistake is reported at once, as a
// usageError; --help comes back as a helpRequest.
func (f *flagSet) parse(args []string) error {
	// The flag package prints its errors and the usage to Output; the help
	// goes to stdout instead, and an error gets one line, not the whole
	// help, so both are written by run.
	usage, out := f.FlagSet.Usage, f.Output()
	f.FlagSet.Usage = func() {}
	f.SetOutput(io.Discard)
	err := f.Parse(args)
	f.FlagSet.Usage = usage
	f.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		var b strings.Builder
		f.SetOutput(&b)
		usage()
		f.SetOutput(out)
		return &helpRequest{text: b.String()}
	}
	if err != nil {
		// The flag package names flags -name; say --name, as the help does.
		dashes := regexp.MustCompile(`(flag|:) -([a-zA-Z])`)
		return &usageError{errors.New(dashes.ReplaceAllString(err.Error(), "$1 --$2"))}
	}
	if f.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(f.Args(), " "))
	}
	f.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	var errs []error
	f.VisitAll(func(fl *flag.Flag) {
		if f.given[fl.Name] || f.secrets[fl.Name] || f.isFileTwin(fl.Name) {
			return
		}
		v, ok := os.LookupEnv(f.envName(fl.Name))
		if !ok {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not %s", f.envName(fl.Name), v, kindOf(fl)))
			return
		}
		f.given[fl.Name] = true
	})
	names := make([]string, 0, len(f.secrets))
	for name := range f.secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := f.resolveSecret(name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return &usageError{errors.Join(errs...)}
	}
	return nil
}

// resolveSecret sets the secret flag name from, in this order: --name,
// --name-file, its variable, its _FILE variable. Two sources at the same
// level are a mistake (which one was meant?). Error messages name the
// source, never the value.
func (f *flagSet) resolveSecret(name string) error {
	file := f.fileOf[name]
	fl, fileFl := f.Lookup(name), f.Lookup(file)
	switch {
	case f.given[name] && f.given[file]:
		return fmt.Errorf("--%s and --%s: give one of them", name, file)
	case f.given[name]:
		return nil
	case f.given[file]:
		return f.setFromFile(fl, fileFl.Value.String(), "--"+file)
	}
	env, envFile := f.envName(name), f.envName(file)
	v, ok := os.LookupEnv(env)
	path, okFile := os.LookupEnv(envFile)
	switch {
	case ok && okFile:
		return fmt.Errorf("%s and %s are both set: set one of them", env, envFile)
	case ok:
		_ = fl.Value.Set(v) // a string flag takes any value
		f.given[name] = true
	case okFile:
		return f.setFromFile(fl, path, envFile)
	}
	return nil
}

func (f *flagSet) setFromFile(fl *flag.Flag, path, source string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return fmt.Errorf("%s: %s is empty", source, path)
	}
	_ = fl.Value.Set(v)
	f.given[fl.Name] = true
	return nil
}

// kindOf names what a flag's value must be, for an error message.
func kindOf(fl *flag.Flag) string {
	switch fl.Value.(type) {
	case interface{ IsBoolFlag() bool }:
		return "a boolean (true or false)"
	}
	switch arg, _ := flag.UnquoteUsage(fl); arg {
	case "int":
		return "an integer"
	case "float":
		return "a number"
	case "duration":
		return "a duration (like 90s or 5m)"
	default:
		return "a valid " + arg
	}
}
