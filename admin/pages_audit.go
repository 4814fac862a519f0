package admin

import (
	"html/template"
	"net/http"
	"net/url"
	"time"
)

func (p *Pages) auditRoutes() []pageRoute {
	return []pageRoute{
		{"GET /admin/audit", (*pageCall).audit},
		{"GET /admin/audit/export", (*pageCall).auditExport},
		{"GET /admin/tokens", (*pageCall).tokens},
		{"POST /admin/tokens", (*pageCall).createToken},
		{"POST /admin/tokens/{id}/revoke", (*pageCall).revokeToken},
	}
}

// auditFilters are the query parameters the audit page passes on.
var auditFilters = []string{"user", "kind", "result", "since", "until", "cursor"}

// auditPage is one page of the audit log.
type auditPage struct {
	Filter map[string]string
	Events []apiEvent
	Next   template.URL // the next page, "" at the end
	Export template.URL // the export of the filtered log
}

// auditFilterQuery is the page's filter (dates as the form has them) with
// a cursor.
func auditFilterQuery(q url.Values, cursor string) url.Values {
	out := url.Values{}
	for _, k := range auditFilters {
		if v := q.Get(k); v != "" && k != "cursor" {
			out.Set(k, v)
		}
	}
	if cursor != "" {
		out.Set("cursor", cursor)
	}
	return out
}

// auditAPIQuery is the filter as the API takes it: the form's days become
// RFC 3339 times, "until" a day including its whole.
func auditAPIQuery(q url.Values, cursor string) url.Values {
	out := auditFilterQuery(q, cursor)
	for k, add := range map[string]time.Duration{"since": 0, "until": 24 * time.Hour} {
		if day, err := time.Parse(time.DateOnly, out.Get(k)); err == nil {
			out.Set(k, day.Add(add).Format(time.RFC3339))
		}
	}
	return out
}

func (c *pageCall) audit() {
	if !c.signedInAdmin() {
		return
	}
	q := c.r.URL.Query()
	d := auditPage{Filter: map[string]string{}}
	for _, k := range auditFilters {
		d.Filter[k] = q.Get(k)
	}
	query := auditAPIQuery(q, q.Get("cursor"))
	query.Set("limit", "50")
	var out struct {
		Events     []apiEvent `json:"events"`
		NextCursor string     `json:"next_cursor"`
	}
	if err := c.api(http.MethodGet, "/audit?"+query.Encode(), nil, &out); err != nil {
		c.apiFailed(err)
		return
	}
	d.Events = out.Events
	if out.NextCursor != "" {
		d.Next = template.URL("/admin/audit?" + auditFilterQuery(q, out.NextCursor).Encode())
	}
	d.Export = template.URL("/admin/audit/export?" + auditFilterQuery(q, "").Encode())
	c.render(http.StatusOK, "audit", "Audit log", d)
}

func (c *pageCall) auditExport() {
	if !c.signedInAdmin() {
		return
	}
	var data []byte
	if err := c.api(http.MethodGet, "/audit/export?"+auditAPIQuery(c.r.URL.Query(), "").Encode(), nil, &data); err != nil {
		c.apiFailed(err)
		return
	}
	c.w.Header().Set("Content-Type", "application/x-ndjson")
	c.w.Header().Set("Content-Disposition", `attachment; filename="postern-audit.jsonl"`)
	c.w.Write(data)
}

// tokensPage lists the API tokens, with a new one's secret shown once.
type tokensPage struct {
	Tokens []apiToken
	New    *apiToken
	Secret string
}

func (c *pageCall) tokens() {
	if !c.signedInAdmin() {
		return
	}
	c.renderTokens(tokensPage{})
}

func (c *pageCall) renderTokens(d tokensPage) {
	var out struct {
		Tokens []apiToken `json:"tokens"`
	}
	if err := c.api(http.MethodGet, "/tokens", nil, &out); err != nil {
		c.apiFailed(err)
		return
	}
	d.Tokens = out.Tokens
	c.render(http.StatusOK, "tokens", "API tokens", d)
}

func (c *pageCall) createToken() {
	f := c.r.PostForm
	in := map[string]any{"name": f.Get("name"), "role": f.Get("role")}
	if u := f.Get("user"); u != "" {
		in["user"] = u
	}
	var out struct {
		Token  apiToken `json:"token"`
		Secret string   `json:"secret"`
	}
	if err := c.api(http.MethodPost, "/tokens", in, &out); err != nil {
		c.actionFailed(err)
		return
	}
	if !c.signedInAdmin() {
		return
	}
	c.renderTokens(tokensPage{New: &out.Token, Secret: out.Secret})
}

func (c *pageCall) revokeToken() {
	if err := c.api(http.MethodDelete, "/tokens/"+url.PathEscape(c.r.PathValue("id")), nil, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/admin/tokens", "tokenrevoked")
}
