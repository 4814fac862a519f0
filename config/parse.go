package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pelletier/go-toml/v2"
)

// Load reads the file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	c, err := Read(path)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Read reads the file at path and decodes it strictly, like Parse, but
// does not Validate: the store commands use only data_dir, key_file and
// limits, and must work before the listeners and upstreams are set up.
func Read(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return decode(data, path)
}

// Parse decodes data onto Default() and validates the result. Unknown keys
// (compared exactly, case included), values of the wrong type and syntax
// errors are reported together, before decoding; any problem makes Parse
// return a nil Config and an *Errors whose entries name the file as name.
func Parse(data []byte, name string) (*Config, error) {
	c, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decode(data []byte, name string) (*Config, error) {
	src, problems := scan(data, name)
	if len(problems) > 0 {
		return nil, errorsOf(problems)
	}
	c := Default()
	// DisallowUnknownFields stays on although scan has checked the keys:
	// if the two ever disagree, the stricter one wins.
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, errorsOf(src.decodeErrors(err))
	}
	c.src = src
	return c, nil
}

// CheckFile loads and validates the file at path for `postern check-config`:
// it prints "ok" and returns 0, or prints each problem on its own line and
// returns 1, the process's exit code.
func CheckFile(path string, w io.Writer) int {
	_, err := Load(path)
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
	fmt.Fprintln(w, escapeControls(err.Error()))
	return 1
}
