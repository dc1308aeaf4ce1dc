// Package medserve embeds the project's open clinical data, so that the
// binary carries its lexicon, rules and training data wherever it runs.
package medserve

import "embed"

// Data is the repository's data/ tree: each data set with its SOURCE.md.
//
//go:embed data
var Data embed.FS
