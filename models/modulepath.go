package models

import (
	"fmt"
	"strconv"
	"strings"
)

// PyTorch users name a layer by its module path (`layer4`, `features.29`,
// `model.features[-1]`, `Mixed_7c`), while an ONNX export names node outputs
// (`/layer4/layer4.1/relu_1/Relu_output_0`). torch.onnx (1.13 and later)
// names each node by the scopes of the modules it ran in, so the module path
// can be read back from the node name, and a module path stands for the
// output of the last node inside its scope: the module's output.

// modulePath reads the module path from an ONNX node name written by
// torch.onnx, or returns "" for a name without scopes. Each scope is the
// module's attribute name ("conv1"), or, for a child of a container, the
// container's scope with the index ("layer4.1" in "layer4", "downsample.0"
// in "downsample"); a module called a second time gets a suffix ("relu_1"),
// which is kept.
func modulePath(nodeName string) string {
	if !strings.HasPrefix(nodeName, "/") {
		return ""
	}
	scopes := strings.Split(nodeName[1:], "/")
	scopes = scopes[:len(scopes)-1] // The last part names the op.
	path, prev := "", ""
	for _, s := range scopes {
		switch {
		case s == "":
			continue
		case path == "":
			path = s
		case strings.HasPrefix(s, prev+"."):
			path += s[len(prev):]
		default:
			path += "." + s
		}
		prev = s
	}
	return path
}

// inModule reports whether a node of module path p ran inside module q:
// p is q or below it, where q may lack the call suffix torch adds to a
// module called again ("relu" matches "relu_1").
func inModule(p, q string) bool {
	for {
		if p == q || strings.HasPrefix(p, q+".") {
			return true
		}
		rest, ok := strings.CutPrefix(p, q+"_")
		if !ok {
			return false
		}
		digits, _, _ := strings.Cut(rest, ".")
		if _, err := strconv.Atoi(digits); err != nil {
			return false
		}
		p = q + strings.TrimPrefix(rest, digits)
	}
}

// moduleLayer returns the index in layers of the last layer inside the
// module named by query, a PyTorch module path that may index a container
// the Python way (`features[-1]`, `encoder.layers[-1].ln_1`) and may start
// with the variable's name `model.`; -1 if no layer is inside it.
func moduleLayer(layers []Layer, query string) (int, error) {
	path, err := resolveIndexes(layers, strings.TrimSpace(query))
	if err != nil {
		return -1, err
	}
	for _, p := range []string{path, strings.TrimPrefix(path, "model.")} {
		for i := len(layers) - 1; i >= 0; i-- {
			if layers[i].Module != "" && inModule(layers[i].Module, p) {
				return i, nil
			}
		}
	}
	return -1, nil
}

// resolveIndexes replaces each `[i]` of a module path by the name of the
// container's i-th child, in the order the graph runs them (negative i
// counts from the end).
func resolveIndexes(layers []Layer, query string) (string, error) {
	for {
		open := strings.IndexByte(query, '[')
		if open < 0 {
			return query, nil
		}
		end := strings.IndexByte(query[open:], ']')
		if end < 0 {
			return "", fmt.Errorf("module path %q has an unclosed [", query)
		}
		end += open
		i, err := strconv.Atoi(strings.TrimSpace(query[open+1 : end]))
		if err != nil {
			return "", fmt.Errorf("module path %q: index %q is not an integer", query, query[open+1:end])
		}
		parent := query[:open]
		children := moduleChildren(layers, parent)
		if len(children) == 0 {
			children = moduleChildren(layers, strings.TrimPrefix(parent, "model."))
		}
		if i < 0 {
			i += len(children)
		}
		if i < 0 || i >= len(children) {
			return "", fmt.Errorf("module path %q: %s has %d children in the graph, no index %s", query, parent, len(children), query[open+1:end])
		}
		query = children[i] + query[end+1:]
	}
}

// moduleChildren lists the paths of the direct children of module parent
// that some layer ran in, in graph order.
func moduleChildren(layers []Layer, parent string) []string {
	var children []string
	seen := map[string]bool{}
	for _, l := range layers {
		rest, ok := strings.CutPrefix(l.Module, parent+".")
		if !ok || parent == "" {
			continue
		}
		name, _, _ := strings.Cut(rest, ".")
		if child := parent + "." + name; !seen[child] {
			seen[child] = true
			children = append(children, child)
		}
	}
	return children
}
