package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bmi-go/bmi/service/fault"
)

// EnvPrefix prefixes the environment variable of every key:
// ceph.op_timeout is BMI_CEPH_OP_TIMEOUT.
const EnvPrefix = "BMI_"

// Error is a configuration error: which key, from where, and what is wrong.
// It prints as one line and wraps fault.ErrInvalid.
type Error struct {
	// Source is where the value came from: "file.yaml:12", "environment
	// BMI_X" or "flag --set".
	Source string
	// Key is the dotted key, such as "ceph.op_timeout"; empty when the error
	// is about the source as a whole.
	Key string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.Source + ": " + e.Msg
	}
	return fmt.Sprintf("%s: key %q: %s", e.Source, e.Key, e.Msg)
}

// Unwrap makes every configuration error an invalid-argument fault.
func (e *Error) Unwrap() error { return fault.ErrInvalid }

// Sources are the inputs Load merges over Default, lowest precedence first.
type Sources struct {
	// File is the YAML file; empty means none (defaults and overrides only).
	File string
	// Env is the environment, as os.Environ returns it; only BMI_* keys
	// naming a configuration key are used.
	Env []string
	// Sets are "key=value" overrides from flags, highest precedence.
	Sets []string
}

// Load builds the configuration from Default, the file, the environment and
// the flag overrides, in that order, and validates it.
func Load(src Sources) (Config, error) {
	cfg := Default()
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return Config{}, &Error{Source: src.File, Msg: fmt.Sprintf("cannot read: %v", unwrapPathErr(err))}
		}
		if err := decodeYAML(&cfg, data, src.File); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&cfg, src.Env); err != nil {
		return Config{}, err
	}
	for _, s := range src.Sets {
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			return Config{}, &Error{Source: "flag --set", Msg: fmt.Sprintf("%q is not key=value", s)}
		}
		if err := setKey(&cfg, strings.TrimSpace(key), val, "flag --set"); err != nil {
			return Config{}, err
		}
	}
	where := src.File
	if where == "" {
		where = "configuration"
	}
	if err := cfg.Validate(where); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decodeYAML applies a YAML document to cfg key by key, so that every error
// names its key and line.
func decodeYAML(cfg *Config, data []byte, file string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &Error{Source: file, Msg: strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", " ")}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file: defaults
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	return applyNode(reflect.ValueOf(cfg).Elem(), root, "", file)
}

var durationType = reflect.TypeOf(time.Duration(0))

func isSection(t reflect.Type) bool { return t.Kind() == reflect.Struct && t != durationType }

func applyNode(v reflect.Value, n *yaml.Node, prefix, file string) error {
	src := fmt.Sprintf("%s:%d", file, n.Line)
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return nil
		}
		key := strings.TrimSuffix(prefix, ".")
		return &Error{Source: src, Key: key, Msg: "want a mapping of keys"}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name := kn.Value
		key := prefix + name
		at := fmt.Sprintf("%s:%d", file, kn.Line)
		if seen[name] {
			return &Error{Source: at, Key: key, Msg: "set twice"}
		}
		seen[name] = true
		f, ok := fieldByTag(v, name)
		if !ok {
			return &Error{Source: at, Key: key, Msg: "unknown key" + suggest(v.Type(), name)}
		}
		if isSection(f.Type()) {
			if err := applyNode(f, vn, key+".", file); err != nil {
				return err
			}
			continue
		}
		if err := decodeLeaf(f, vn); err != nil {
			return &Error{Source: fmt.Sprintf("%s:%d", file, vn.Line), Key: key, Msg: err.Error()}
		}
	}
	return nil
}

// decodeLeaf decodes one value node into a leaf field.
func decodeLeaf(f reflect.Value, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	wantSeq := f.Kind() == reflect.Slice
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		f.Set(reflect.Zero(f.Type()))
		return nil
	case wantSeq && n.Kind != yaml.SequenceNode, !wantSeq && n.Kind != yaml.ScalarNode:
		return fmt.Errorf("want %s", typeHint(f.Type()))
	}
	tmp := reflect.New(f.Type())
	if wantSeq && f.Type().Elem().Kind() == reflect.Struct {
		return decodeStructs(tmp, f, n)
	}
	if err := n.Decode(tmp.Interface()); err != nil {
		return fmt.Errorf("invalid value %s: want %s", quoteNode(n), typeHint(f.Type()))
	}
	f.Set(tmp.Elem())
	return nil
}

// decodeStructs decodes a list of mappings strictly: an unknown key in an
// item is an error naming it.
func decodeStructs(tmp, f reflect.Value, n *yaml.Node) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(tmp.Interface()); err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "yaml: ") {
			msg = msg[i+2:]
		}
		return fmt.Errorf("invalid list: %s; want %s", msg, typeHint(f.Type()))
	}
	f.Set(tmp.Elem())
	return nil
}

func quoteNode(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q", n.Value)
	}
	return "(" + kindName(n.Kind) + ")"
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "a value"
}

func typeHint(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s or 2m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int64, t.Kind() == reflect.Int:
		return "an integer"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		var keys []string
		for i := 0; i < t.Elem().NumField(); i++ {
			keys = append(keys, tagName(t.Elem().Field(i)))
		}
		return "a list of mappings with keys " + strings.Join(keys, ", ")
	case t.Kind() == reflect.Slice:
		return "a list of strings"
	}
	return "a string"
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// suggest names the known keys of a section, for "unknown key" errors.
func suggest(t reflect.Type, name string) string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		names = append(names, tagName(t.Field(i)))
	}
	sort.Strings(names)
	return fmt.Sprintf(" (known here: %s)", strings.Join(names, ", "))
}

// Leaf is one configuration key: its dotted name, environment variable and
// type.
type Leaf struct {
	// Key is the dotted key, such as "ceph.pool".
	Key string
	// Env is its environment variable, such as "BMI_CEPH_POOL".
	Env   string
	index []int
	typ   reflect.Type
}

// Leaves lists every configuration key in schema order.
func Leaves() []Leaf {
	var out []Leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := prefix + tagName(f)
			idx := append(append([]int(nil), index...), i)
			if isSection(f.Type) {
				walk(f.Type, key+".", idx)
				continue
			}
			env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			out = append(out, Leaf{Key: key, Env: env, index: idx, typ: f.Type})
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return out
}

func applyEnv(cfg *Config, env []string) error {
	vals := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vals[k] = v
		}
	}
	for _, l := range Leaves() {
		if v, ok := vals[l.Env]; ok {
			if err := setLeaf(cfg, l, v, "environment "+l.Env); err != nil {
				return err
			}
		}
	}
	return nil
}

func setKey(cfg *Config, key, val, source string) error {
	for _, l := range Leaves() {
		if l.Key == key {
			return setLeaf(cfg, l, val, source)
		}
	}
	return &Error{Source: source, Key: key, Msg: "unknown key"}
}

// setLeaf parses a string from the environment or a flag as the leaf's type;
// lists are comma-separated.
func setLeaf(cfg *Config, l Leaf, val, source string) error {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: val}
	if l.typ.Kind() == reflect.Slice {
		n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, part := range strings.Split(val, ",") {
			if part = strings.TrimSpace(part); part != "" {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part})
			}
		}
	} else if l.typ.Kind() == reflect.String {
		n.Tag = "!!str"
	}
	f := reflect.ValueOf(cfg).Elem().FieldByIndex(l.index)
	if err := decodeLeaf(f, n); err != nil {
		return &Error{Source: source, Key: l.Key, Msg: err.Error()}
	}
	return nil
}
