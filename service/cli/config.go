package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/bmi-go/bmi/service/fault"
)

// fileConfig is the CLI's optional config file ($BMI_CLI_CONFIG, else
// $XDG_CONFIG_HOME/bmi/cli.yaml or ~/.config/bmi/cli.yaml):
//
//	url: http://bmid.example:8080
//	user: alice
//	password: secret   # the file must then be private (mode 0600)
//
// Flags win over the environment, which wins over the file.
type fileConfig struct {
	URL      string `yaml:"url"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// configPath returns the config file's path ("" when none applies).
func (a *app) configPath() string {
	if p := a.configFlag; p != "" {
		return p
	}
	if p := a.env.Getenv("BMI_CLI_CONFIG"); p != "" {
		return p
	}
	if x := a.env.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "bmi", "cli.yaml")
	}
	if h := a.env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "bmi", "cli.yaml")
	}
	return ""
}

// loadConfig reads the config file; a missing default file is no error,
// a missing file named by --config or BMI_CLI_CONFIG is.
func (a *app) loadConfig() (fileConfig, error) {
	var fc fileConfig
	path := a.configPath()
	if path == "" {
		return fc, nil
	}
	named := a.configFlag != "" || a.env.Getenv("BMI_CLI_CONFIG") != ""
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		return fc, nil
	}
	if err != nil {
		return fc, fault.Errorf(fault.Invalid, "config file: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fault.Errorf(fault.Invalid, "config file: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) { // an empty file is fine
		return fc, fault.Errorf(fault.Invalid, "config file %s: %v", path, err)
	}
	if fc.Password != "" && st.Mode().Perm()&0o077 != 0 {
		return fc, fault.Errorf(fault.Invalid, "config file %s holds a password but others may read it: chmod 600 it", path)
	}
	return fc, nil
}
