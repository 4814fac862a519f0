package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pelletier/go-toml/v2"

	"github.com/postern-dev/postern/internal/safetext"
)

// load reads the file at path and parses it with Parse.
func load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Read reads the file at path and decodes it strictly, like Parse, but
// does not Validate: the store commands use only data_dir, key_file and
// limits, and must work before the listeners and upstreams are set up.
func Read(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c, problems := decode(data, path)
	if err := errorsOf(problems); err != nil {
		return nil, err
	}
	return c, nil
}

func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return data, nil
}

// Parse decodes data onto Default() and validates the result. Unknown keys
// (compared exactly, case included), values of the wrong type, syntax
// errors and every problem Validate finds are reported together, so that
// one run of check-config lists them all; any problem makes Parse return a
// nil Config and an *Errors whose entries name the file as name.
func Parse(data []byte, name string) (*Config, error) {
	c, problems := decode(data, name)
	if c != nil {
		problems = append(problems, c.validate()...)
	}
	if err := errorsOf(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// decode decodes data onto Default(). A wrong key-value does not end it:
// each one found (by scan, or by go-toml: a bad duration, a number too
// large, a key set twice) is reported, blanked out of a copy of data, and
// decoding starts again without it, its default standing in. The Config is
// nil only when the document cannot be decoded at all (a syntax error, a
// table where a value belongs).
func decode(data []byte, name string) (*Config, []Error) {
	src, problems := scan(data, name)
	if src.broken {
		return nil, problems
	}
	work := bytes.Clone(data)
	for _, p := range problems {
		src.drop(work, src.offset(p.Line, p.Column))
	}
	// Each round drops one more key-value or ends, so the key-values bound it.
	for range len(src.kvs) + 1 {
		c := Default()
		// DisallowUnknownFields stays on although scan has checked the keys:
		// if the two ever disagree, the stricter one wins.
		err := toml.NewDecoder(bytes.NewReader(work)).DisallowUnknownFields().Decode(c)
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case err == nil:
			c.src = src
			return c, problems
		case errors.As(err, &strict):
			// go-toml decodes everything before it lists unknown keys.
			c.src = src
			return c, src.addNew(problems, src.decodeErrors(err))
		case errors.As(err, &de):
			e := src.fromDecode(de)
			if problems = src.addNew(problems, []Error{e}); !src.drop(work, src.offset(e.Line, e.Column)) {
				return nil, problems
			}
		default:
			return nil, src.addNew(problems, src.decodeErrors(err))
		}
	}
	return nil, problems
}

// CheckFile loads and validates the file at path for `postern check-config`:
// it prints "ok" and returns 0, or prints each problem on its own line and
// returns 1, the process's exit code.
func CheckFile(path string, w io.Writer) int {
	_, err := load(path)
	if err == nil {
		fmt.Fprintln(w, "ok")
		return 0
	}
	var list *Errors
	if errors.As(err, &list) {
		for i := range list.List {
			fmt.Fprintln(w, list.List[i].Error())
		}
		return 1
	}
	fmt.Fprintln(w, safetext.Show(err.Error()))
	return 1
}
