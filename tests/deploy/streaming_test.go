package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/scripts/samtemplate"
	"gopkg.in/yaml.v3"
)

// streamingTwins names the template's functions that are not a directory of functions/ but
// a second deployment of one (twin -> origin): the origin's binary and settings behind a
// Lambda Function URL that streams its responses. shared/serverless serves either HTTP API
// events (buffered, httpadapter) or Function URL streams (lambdaurl, with
// LAMBDA_HTTP_MODE=url-streaming), never both, so a function that must do both on AWS is
// deployed twice. Function Compute streams from the one function: twins have no s.yaml
// resource and no sample event.
var streamingTwins = map[string]string{"ai-chat-stream": "ai-chat"}

// streamingMode is the LAMBDA_HTTP_MODE that makes shared/serverless answer as a
// response-streaming Function URL.
const streamingMode = "url-streaming"

// runtimeProperties are the Properties a twin must share with its origin: it is the same
// function, only reached another way.
var runtimeProperties = []string{"Runtime", "Handler", "Architectures", "MemorySize", "Timeout",
	"Policies", "Role", "VpcConfig", "Layers"}

func TestStreamingTwins(t *testing.T) {
	t.Parallel()
	d := mustLoad(t)
	for twin, origin := range streamingTwins {
		t.Run(twin, func(t *testing.T) {
			t.Parallel()
			if !slices.Contains(d.functions, origin) {
				t.Fatalf("streaming twin %s: its origin functions/%s does not exist", twin, origin)
			}
			tf, ok := d.sam.Function(twin)
			if !ok {
				t.Fatalf("template.yaml has no %s (%s: %s), the streaming twin of %s: deploy it or drop it from streamingTwins",
					samtemplate.LogicalIDFor(twin), samtemplate.FunctionEnvVar, twin, origin)
			}
			of, ok := d.sam.Function(origin)
			if !ok {
				t.Fatalf("template.yaml has no function %s, whose streaming twin %s is", origin, twin)
			}
			where := "template.yaml " + tf.LogicalID
			if tf.CodeURI != of.CodeURI || tf.BuildMethod != of.BuildMethod {
				t.Errorf("%s: CodeUri %q BuildMethod %q, want its origin's (%q, %q)",
					where, tf.CodeURI, tf.BuildMethod, of.CodeURI, of.BuildMethod)
			}
			if len(tf.Routes) > 0 || len(tf.Schedules) > 0 {
				t.Errorf("%s: has routes %v and schedules %v; a twin is reached only through its Function URL (the routes are %s's)",
					where, routeKeys(tf), tf.Schedules, of.LogicalID)
			}

			tp := lookupNode(d.raw, "Resources", tf.LogicalID, "Properties")
			op := lookupNode(d.raw, "Resources", of.LogicalID, "Properties")
			if got := scalar(lookupNode(tp, "FunctionUrlConfig", "InvokeMode")); got != "RESPONSE_STREAM" {
				t.Errorf("%s: FunctionUrlConfig.InvokeMode %q, want RESPONSE_STREAM", where, got)
			}
			if got := scalar(lookupNode(tp, "FunctionUrlConfig", "AuthType")); got != "NONE" {
				t.Errorf("%s: FunctionUrlConfig.AuthType %q, want NONE (the function checks keys and tokens itself, as behind HTTP API)", where, got)
			}
			for _, key := range runtimeProperties {
				if got, want := canonical(lookupNode(tp, key)), canonical(lookupNode(op, key)); got != want {
					t.Errorf("%s: Properties.%s is %s, its origin %s's is %s", where, key, got, of.LogicalID, want)
				}
			}

			// The same settings, but for its name and its mode.
			tenv, oenv := envOf(tp), envOf(op)
			if got := tenv["LAMBDA_HTTP_MODE"]; got != "!!str "+streamingMode {
				t.Errorf("%s: Environment.Variables.LAMBDA_HTTP_MODE = %q, want %s", where, got, streamingMode)
			}
			for _, env := range []map[string]string{tenv, oenv} {
				delete(env, "LAMBDA_HTTP_MODE")
				delete(env, samtemplate.FunctionEnvVar)
			}
			for k, v := range oenv {
				if tenv[k] != v {
					t.Errorf("%s: Environment.Variables.%s = %q, its origin %s sets %q", where, k, tenv[k], of.LogicalID, v)
				}
			}
			for k, v := range tenv {
				if _, ok := oenv[k]; !ok {
					t.Errorf("%s: Environment.Variables.%s = %q, which its origin %s does not set", where, k, v, of.LogicalID)
				}
			}

			// Operators find the URL in the stack's outputs.
			if !outputsURLOf(d.raw, tf.LogicalID) {
				t.Errorf("template.yaml: no Output with !GetAtt %sUrl.FunctionUrl (the twin's URL)", tf.LogicalID)
			}

			checkTwinBuild(t, d.root, tf.LogicalID, origin)
		})
	}
}

// checkTwinBuild checks that `sam build`'s `make build-<twin's LogicalId>` builds the
// origin's package: the Makefile's build-%Function rule alone would look for
// functions/<twin>.
func checkTwinBuild(t *testing.T, root, logicalID, origin string) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not found: cannot check the Makefile's build-" + logicalID)
	}
	cmd := exec.Command("make", "-s", "-n", "build-"+logicalID, "ARTIFACTS_DIR=/artifacts")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	recipe := string(out)
	if err != nil || !strings.Contains(recipe, "./functions/"+origin) || strings.Contains(recipe, "./functions/"+origin+"-") ||
		!strings.Contains(recipe, "/artifacts/bootstrap") {
		t.Errorf("Makefile: `make -n build-%s` (what sam build runs) must build ./functions/%s into $(ARTIFACTS_DIR)/bootstrap, e.g.\n"+
			"\tbuild-%s:\n\t\tGOOS=linux GOARCH=$(DEPLOY_ARCH) $(BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/%s\n"+
			"it prints (%v):\n%s", logicalID, origin, logicalID, origin, err, recipe)
	}
}

// TestFunctionURLModes checks every function's Lambda HTTP mode against how it is reached:
// a response-streaming Function URL needs the url-streaming mode (lambdaurl writes the
// streaming prelude), and a function in that mode cannot serve HTTP API events, which
// expect a buffered payload 2.0 response.
func TestFunctionURLModes(t *testing.T) {
	t.Parallel()
	d := mustLoad(t)
	globalEnv := envOf(lookupNode(d.raw, "Globals", "Function"))
	if _, ok := globalEnv["LAMBDA_HTTP_MODE"]; ok {
		t.Errorf("template.yaml: Globals set LAMBDA_HTTP_MODE; set it only on the functions behind a streaming Function URL")
	}
	for _, f := range d.sam.Functions {
		props := lookupNode(d.raw, "Resources", f.LogicalID, "Properties")
		streamingURL := scalar(lookupNode(props, "FunctionUrlConfig", "InvokeMode")) == "RESPONSE_STREAM"
		inMode := envOf(props)["LAMBDA_HTTP_MODE"] == "!!str "+streamingMode
		switch {
		case streamingURL && !inMode:
			t.Errorf("template.yaml %s: a RESPONSE_STREAM Function URL without LAMBDA_HTTP_MODE=%s", f.LogicalID, streamingMode)
		case inMode && !streamingURL:
			t.Errorf("template.yaml %s: LAMBDA_HTTP_MODE=%s without a RESPONSE_STREAM Function URL", f.LogicalID, streamingMode)
		case inMode && len(f.Routes) > 0:
			t.Errorf("template.yaml %s: LAMBDA_HTTP_MODE=%s cannot answer its HttpApi routes %v; give them to a buffered function",
				f.LogicalID, streamingMode, routeKeys(f))
		}
		if inMode {
			if _, twin := streamingTwins[f.Name]; !twin && !slices.Contains(d.functions, f.Name) {
				t.Errorf("template.yaml %s: streams but is neither a function nor a declared streaming twin", f.LogicalID)
			}
		}
	}
}

func loadYAML(path string) (*yaml.Node, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(doc.Content) != 1 {
		return nil, fmt.Errorf("parse %s: not one YAML document", path)
	}
	return doc.Content[0], nil
}

// lookupNode follows keys through nested mappings (and aliases); nil when absent.
func lookupNode(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// scalar is a literal scalar's value, "" for anything else.
func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || (strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")) {
		return ""
	}
	return n.Value
}

// canonical renders a node (intrinsic tags included) so that equal settings compare
// equal; "(absent)" for nil.
func canonical(n *yaml.Node) string {
	if n == nil {
		return "(absent)"
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(n); err != nil {
		return "(unencodable: " + err.Error() + ")"
	}
	_ = enc.Close()
	return strings.TrimSpace(b.String())
}

// envOf maps a function's (or Globals') Environment.Variables to "tag value", so that
// !Ref MasterKey and the string "MasterKey" differ.
func envOf(props *yaml.Node) map[string]string {
	env := map[string]string{}
	vars := lookupNode(props, "Environment", "Variables")
	if vars == nil || vars.Kind != yaml.MappingNode {
		return env
	}
	for i := 0; i+1 < len(vars.Content); i += 2 {
		v := vars.Content[i+1]
		if v.Kind == yaml.ScalarNode {
			env[vars.Content[i].Value] = v.Tag + " " + v.Value
		} else {
			env[vars.Content[i].Value] = canonical(v)
		}
	}
	return env
}

// outputsURLOf reports whether an Output's Value is the Function URL SAM generates for
// logicalID (<logicalID>Url, attribute FunctionUrl).
func outputsURLOf(root *yaml.Node, logicalID string) bool {
	outs := lookupNode(root, "Outputs")
	if outs == nil || outs.Kind != yaml.MappingNode {
		return false
	}
	want := logicalID + "Url.FunctionUrl"
	for i := 0; i+1 < len(outs.Content); i += 2 {
		v := lookupNode(outs.Content[i+1], "Value")
		if v == nil {
			continue
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!GetAtt" && v.Value == want {
			return true
		}
		if seq := lookupNode(v, "Fn::GetAtt"); seq != nil && seq.Kind == yaml.SequenceNode && len(seq.Content) == 2 &&
			seq.Content[0].Value+"."+seq.Content[1].Value == want {
			return true
		}
	}
	return false
}
