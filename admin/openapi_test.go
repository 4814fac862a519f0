package admin

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIMatchesRoutes: the document validates, every route is in it,
// and every operation in it is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	doc, err := openapi3.NewLoader().LoadFromData(e.srv.openapi)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	routed := map[string]bool{}
	for _, rt := range e.srv.routes {
		key := rt.Method + " " + rt.Path
		routed[key] = true
		item := doc.Paths.Find(rt.Path)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("%s is routed but not in the document", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !routed[method+" "+path] {
				t.Errorf("%s %s is in the document but not routed", method, path)
			}
		}
	}
	// The document served is the one checked.
	r := e.client().must(200, "GET", "/api/v1/openapi.json", nil)
	var served map[string]any
	if err := json.Unmarshal(r.body, &served); err != nil || served["openapi"] != "3.1.0" {
		t.Errorf("served document: %v %v", err, served["openapi"])
	}
}
