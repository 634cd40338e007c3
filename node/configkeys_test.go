package node

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"
)

// TestConfigKeysMatchApply: every case of Apply's switch is in configKeys
// and nothing else is, so suggestions never name an option Apply ignores.
func TestConfigKeysMatchApply(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "Apply" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						cases = append(cases, s)
					}
				}
			}
			return true
		})
	}
	slices.Sort(cases)
	if len(cases) < 40 {
		t.Fatalf("found only %d cases in Apply: %v", len(cases), cases)
	}
	if !slices.Equal(cases, configKeys) {
		t.Errorf("configKeys and Apply differ:\nApply:      %v\nconfigKeys: %v", cases, configKeys)
	}
	for _, k := range configKeys {
		c := DefaultConfig()
		if unknown, _ := c.Apply(map[string]string{k: ""}); len(unknown) > 0 {
			t.Errorf("Apply does not read %q", k)
		}
	}
}

func TestSuggestKey(t *testing.T) {
	cases := map[string]string{
		"imap_lissten":       "imap_listen",
		"imap-listen":        "imap_listen",
		"imap_lsiten":        "imap_listen",
		"mupdate_sever":      "mupdate_server",
		"timout":             "timeout",
		"admns":              "admins",
		"servrname":          "servername",
		"unixhierachysep":    "unixhierarchysep",
		"maxmessagesize":     "maxmessagesize",
		"configdirectory":    "",
		"sasl_mech_list":     "",
		"partition-default":  "",
		"tls_server_ca_file": "",
		"virtdomain":         "virtdomains",
		"defaultdomain":      "",
		"ab":                 "",
	}
	for k, want := range cases {
		if got := SuggestKey(k); got != want {
			t.Errorf("SuggestKey(%q) = %q, want %q", k, got, want)
		}
	}
}
