package testpeer

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EASDoctype opens every ActiveSync XML document (MS-ASWBXML).
const EASDoctype = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">` + "\n"

// EASContentType is the media type of an ActiveSync command's body.
const EASContentType = "application/vnd.ms-sync.wbxml"

// EASClient speaks Exchange ActiveSync over HTTP as a phone does: OPTIONS
// to learn the protocol versions, then one POST per command, its body
// WBXML made and read by libwbxml's own tools (xml2wbxml, wbxml2xml), the
// library SOGo uses. It keeps a transcript of what it sent and got.
type EASClient struct {
	URL        string // the endpoint, .../Microsoft-Server-ActiveSync
	HTTP       *http.Client
	User       string // the User= of each command
	DeviceID   string
	DeviceType string
	Version    string // MS-ASProtocolVersion; "14.1" when empty
	// Prepare adds what a request needs besides the protocol's own
	// headers (credentials, headers a test forges).
	Prepare func(*http.Request)

	Transcript strings.Builder
}

// EASAnswer is one answer to a command.
type EASAnswer struct {
	Status int
	Header http.Header
	Body   []byte // WBXML as sent
	XML    string // Body decoded; "" when Body is empty
}

// String is the answer's status and what it said, for a failure message.
func (a *EASAnswer) String() string {
	if a == nil {
		return "no answer"
	}
	text := a.XML
	if text == "" {
		text = string(a.Body)
	}
	return fmt.Sprintf("%d %s", a.Status, strings.TrimSpace(text))
}

// Options sends OPTIONS, which answers the versions and commands the
// server speaks in MS-ASProtocolVersions and MS-ASProtocolCommands.
func (c *EASClient) Options(t testing.TB) (*EASAnswer, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, c.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.send(t, req, "OPTIONS "+c.URL, "")
}

// Command posts cmd with body, an XML document without its prolog (which
// is added), and returns the answer with its body decoded. A transport
// error (a connection postern ended) is returned, not fatal.
func (c *EASClient) Command(ctx context.Context, t testing.TB, cmd, body string) (*EASAnswer, error) {
	t.Helper()
	q := url.Values{"Cmd": {cmd}, "User": {c.User}, "DeviceId": {c.DeviceID}, "DeviceType": {c.DeviceType}}
	var wbxml []byte
	if body != "" {
		wbxml = EASEncode(t, EASDoctype+body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"?"+q.Encode(), bytes.NewReader(wbxml))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", EASContentType)
	return c.send(t, req, "POST "+c.URL+"?"+q.Encode(), body)
}

func (c *EASClient) send(t testing.TB, req *http.Request, line, body string) (*EASAnswer, error) {
	t.Helper()
	v := c.Version
	if v == "" {
		v = "14.1"
	}
	req.Header.Set("MS-ASProtocolVersion", v)
	req.Header.Set("User-Agent", "postern-test-eas/1.0")
	if c.Prepare != nil {
		c.Prepare(req)
	}
	fmt.Fprintf(&c.Transcript, "> %s\n", line)
	if body != "" {
		fmt.Fprintf(&c.Transcript, "%s\n", body)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		fmt.Fprintf(&c.Transcript, "< error: %v\n\n", err)
		return nil, err
	}
	defer resp.Body.Close()
	a := &EASAnswer{Status: resp.StatusCode, Header: resp.Header}
	if a.Body, err = io.ReadAll(resp.Body); err != nil {
		fmt.Fprintf(&c.Transcript, "< %s, body cut: %v\n\n", resp.Status, err)
		return nil, err
	}
	if len(a.Body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), EASContentType) {
		a.XML = EASDecode(t, a.Body)
	}
	fmt.Fprintf(&c.Transcript, "< %s\n", resp.Status)
	shown := []string{"Content-Type", "WWW-Authenticate", "Retry-After"}
	if req.Method == http.MethodOptions {
		shown = append(shown, "MS-ASProtocolVersions", "MS-ASProtocolCommands")
	}
	for _, h := range shown {
		if v := resp.Header.Get(h); v != "" {
			fmt.Fprintf(&c.Transcript, "< %s: %s\n", h, v)
		}
	}
	fmt.Fprintf(&c.Transcript, "%s\n", strings.TrimSpace(a.XML))
	return a, nil
}

// EASEncode turns an ActiveSync XML document into WBXML with xml2wbxml.
func EASEncode(t testing.TB, doc string) []byte {
	t.Helper()
	return wbxmlTool(t, "xml2wbxml", []byte(doc))
}

// EASDecode turns WBXML into XML with wbxml2xml, in ActiveSync's code
// pages (phones and SOGo send no public identifier that names them).
func EASDecode(t testing.TB, wbxml []byte) string {
	t.Helper()
	return string(wbxmlTool(t, "wbxml2xml", wbxml, "-l", "ACTIVESYNC", "-m", "1", "-i", "2"))
}

// wbxmlTool runs one of libwbxml's converters on in. They write their
// result to a file (their "succeeded" line goes to standard output).
func wbxmlTool(t testing.TB, name string, in []byte, args ...string) []byte {
	t.Helper()
	bin := RequirePeer(t, name)
	dir := t.TempDir()
	inFile, outFile := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(inFile, in, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append(args, "-o", outFile, inFile)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\ninput:\n%q", name, err, out, in)
	}
	data, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return data
}

// EASFolder is one folder of a FolderSync answer.
type EASFolder struct {
	ServerID    string `xml:"ServerId"`
	ParentID    string `xml:"ParentId"`
	DisplayName string `xml:"DisplayName"`
	Type        int    `xml:"Type"`
}

// EASFolderSync is a FolderSync answer (MS-ASCMD 2.2.1.5).
type EASFolderSync struct {
	Status  int         `xml:"Status"`
	SyncKey string      `xml:"SyncKey"`
	Folders []EASFolder `xml:"Changes>Add"`
}

// EASSync is a Sync answer with its collections (MS-ASCMD 2.2.1.21).
type EASSync struct {
	Status      int             `xml:"Status"`
	Collections []easCollection `xml:"Collections>Collection"`
}

// EASPing is a Ping answer (MS-ASCMD 2.2.1.13).
type EASPing struct {
	Status  int      `xml:"Status"`
	Folders []string `xml:"Folders>Folder"`
}

// EASParse reads an answer's XML into v, failing t when it does not parse.
func EASParse(t testing.TB, a *EASAnswer, v any) {
	t.Helper()
	if err := xml.Unmarshal([]byte(a.XML), v); err != nil {
		t.Fatalf("answer %d: %v\n%s", a.Status, err, a.XML)
	}
}

// FolderSyncInbox runs a device's first FolderSync through c and returns
// the server id of INBOX, failing t unless the answer has status 1.
func FolderSyncInbox(t testing.TB, c *EASClient) string {
	t.Helper()
	a, err := c.Command(context.Background(), t, "FolderSync", `<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>`)
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("FolderSync: %v %v", err, a)
	}
	var fs EASFolderSync
	EASParse(t, a, &fs)
	if fs.Status != 1 {
		t.Fatalf("FolderSync status %d, want 1:\n%s", fs.Status, a.XML)
	}
	for _, f := range fs.Folders {
		if f.Type == 2 { // the default Inbox (MS-ASCMD 2.2.3.186.3)
			return f.ServerID
		}
	}
	t.Fatalf("FolderSync lists no Inbox:\n%s", a.XML)
	return ""
}

// SyncSubjects syncs the mail folder id from the start, as a new device
// does (SyncKey 0, then the key it got with GetChanges), and returns the
// subjects of the messages the server sent, failing t unless each answer
// has status 1.
func SyncSubjects(t testing.TB, c *EASClient, id string) []string {
	t.Helper()
	first := syncOnce(t, c, id, "0", "")
	options := `<DeletesAsMoves>1</DeletesAsMoves><GetChanges>1</GetChanges><WindowSize>100</WindowSize>` +
		`<Options><FilterType>0</FilterType><BodyPreference xmlns="AirSyncBase:"><Type>1</Type>` +
		`<TruncationSize>1024</TruncationSize></BodyPreference></Options>`
	next := syncOnce(t, c, id, first.SyncKey, options)
	var subjects []string
	for _, add := range next.Adds {
		subjects = append(subjects, add.Subject)
	}
	return subjects
}

// easCollection is one collection of a Sync answer.
type easCollection = struct {
	SyncKey      string `xml:"SyncKey"`
	CollectionID string `xml:"CollectionId"`
	Status       int    `xml:"Status"`
	Adds         []struct {
		ServerID string `xml:"ServerId"`
		Subject  string `xml:"ApplicationData>Subject"`
		From     string `xml:"ApplicationData>From"`
	} `xml:"Commands>Add"`
}

// syncOnce sends one Sync of collection id from key and returns its
// collection of the answer.
func syncOnce(t testing.TB, c *EASClient, id, key, options string) easCollection {
	t.Helper()
	body := `<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>` + key + `</SyncKey><CollectionId>` + id +
		`</CollectionId>` + options + `</Collection></Collections></Sync>`
	a, err := c.Command(context.Background(), t, "Sync", body)
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("Sync from %s: %v %v", key, err, a)
	}
	var s EASSync
	EASParse(t, a, &s)
	if len(s.Collections) != 1 || s.Collections[0].Status != 1 {
		t.Fatalf("Sync from %s: not one collection with status 1:\n%s", key, a.XML)
	}
	return s.Collections[0]
}
