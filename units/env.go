package units

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// EnvUse is one environment variable a configuration read with env(), as
// `berth check` shows it: the same file can mean different things on
// different machines, and the check is where that becomes visible.
type EnvUse struct {
	Name string
	// Value is what the configuration got: the variable's value, or the
	// default when the variable is unset.
	Value string
	// Defaulted is true when the variable was unset and the default used.
	Defaulted bool
}

// evalContext is the context every expression of the file is evaluated
// in. It holds functions only: env() is the one way a file reads its
// surroundings, so that a file cannot pick up a variable by accident.
// Evaluating through the context, not by substituting text first, keeps
// each diagnostic at the expression that caused it.
func (d *decoder) evalContext() *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{"env": d.envFunc()}}
}

// envFunc is env("NAME") and env("NAME", "default"). An unset variable
// without a default is an error naming it: a silent "" would bind port 0
// or import the wrong settings module and fail far from the cause.
func (d *decoder) envFunc() function.Function {
	return function.New(&function.Spec{
		Description: "The value of an environment variable of berth's, or the default when it is unset.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if len(args) > 2 {
				return cty.NilVal, fmt.Errorf("env takes a variable's name and at most one default; got %d arguments", len(args))
			}
			if v, ok := os.LookupEnv(name); ok {
				d.useEnv(EnvUse{Name: name, Value: v})
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				def := args[1].AsString()
				d.useEnv(EnvUse{Name: name, Value: def, Defaulted: true})
				return cty.StringVal(def), nil
			}
			return cty.NilVal, fmt.Errorf("the environment variable %s is not set and env(%q) has no default; set %s, or give a default: env(%q, \"...\")", name, name, name, name)
		},
	})
}

// useEnv records a variable read, once however often the decoder
// evaluates the expression that reads it.
func (d *decoder) useEnv(u EnvUse) {
	for _, e := range d.env {
		if e.Name == u.Name && e.Value == u.Value {
			return
		}
	}
	d.env = append(d.env, u)
}

// hintEnv adds to a diagnostic about a variable reference (such as
// ${env.PORT} or ${PORT}) how the file reads the environment instead.
func hintEnv(diags hcl.Diagnostics) {
	for _, diag := range diags {
		if diag.Summary == "Unknown variable" || diag.Summary == "Variables not allowed" {
			diag.Detail = strings.TrimSpace(diag.Detail + " A configuration reads the environment with env(\"NAME\") or env(\"NAME\", \"default\"), for example address = \"127.0.0.1:${env(\"PORT\", \"8000\")}\".")
		}
	}
}

// dedupe drops repeated diagnostics: the decoder evaluates some
// expressions more than once (to see whether they are set, then to
// convert them), and each evaluation reports the same failure; and
// gohcl's "value must be known" beside the failure that caused it.
func dedupe(diags hcl.Diagnostics) hcl.Diagnostics {
	type key struct {
		summary, detail string
		rng             hcl.Range
	}
	seen := map[key]bool{}
	var out hcl.Diagnostics
	for _, diag := range diags {
		if diag.Detail == "Unsuitable value: value must be known" && len(diags) > 1 {
			// gohcl's echo of an expression that failed to evaluate,
			// whose own diagnostic says why.
			continue
		}
		k := key{summary: diag.Summary, detail: diag.Detail}
		if diag.Subject != nil {
			k.rng = *diag.Subject
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, diag)
		}
	}
	return out
}

// looksSecret reports whether a variable's name suggests a credential,
// whose value `berth check` should not print.
func looksSecret(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Resolved lists what the configuration took from outside the file, one
// line each, for `berth check`: the environment variables it read with
// env() and the value each gave (a credential's only by its length).
func (c *Config) Resolved() []string {
	env := append([]EnvUse(nil), c.Env...)
	sort.SliceStable(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	var lines []string
	for _, e := range env {
		v := fmt.Sprintf("%q", e.Value)
		if looksSecret(e.Name) {
			v = fmt.Sprintf("(%d characters, not shown)", len(e.Value))
		}
		if e.Defaulted {
			lines = append(lines, fmt.Sprintf("env %s is unset: default %s", e.Name, v))
		} else {
			lines = append(lines, fmt.Sprintf("env %s = %s", e.Name, v))
		}
	}
	return lines
}
