package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"medserve/internal/gateway"
	"medserve/internal/model"
	"medserve/internal/pipeline"
)

// Open Inference Protocol (KServe V2) shapes.
type v2Tensor struct {
	Name     string          `json:"name"`
	Shape    []int           `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data,omitempty"`
}

type v2TensorOut struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Datatype string `json:"datatype"`
	Data     any    `json:"data"`
}

type v2InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Inputs     []v2Tensor        `json:"inputs"`
	Outputs    []json.RawMessage `json:"outputs,omitempty"`
}

type v2InferResponse struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version"`
	ID           string        `json:"id,omitempty"`
	Outputs      []v2TensorOut `json:"outputs"`
}

type v2Meta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

func v2Error(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func (s *Server) handleV2Server() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"name": "medserve", "version": s.Version, "extensions": []string{}})
	})
}

// model checks the {name} and optional {version} path values.
func (s *Server) model(w http.ResponseWriter, r *http.Request) bool {
	m := s.artifact().Manifest
	if r.PathValue("name") != m.Name {
		v2Error(w, http.StatusNotFound, "model %q not found", r.PathValue("name"))
		return false
	}
	if v := r.PathValue("version"); v != "" && v != m.Version {
		v2Error(w, http.StatusNotFound, "model %s version %q not found", m.Name, v)
		return false
	}
	return true
}

func (s *Server) handleV2Model() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.model(w, r) {
			return
		}
		m := s.artifact().Manifest
		writeJSON(w, http.StatusOK, map[string]any{
			"name": m.Name, "versions": []string{m.Version}, "platform": "medserve-go/" + m.Family,
			// A request carries either "query" (the whole pipeline: safety
			// floor, cache, audit) or "features" (the raw model only).
			"inputs":  []v2Meta{{Name: "query", Datatype: "BYTES", Shape: []int{-1}}, {Name: "features", Datatype: "FP32", Shape: []int{-1, s.Features.Dim()}}},
			"outputs": []v2Meta{{Name: "assessment", Datatype: "BYTES", Shape: []int{-1}}, {Name: "probabilities", Datatype: "FP32", Shape: []int{-1, 5}}},
			"parameters": map[string]any{
				"query":    "one POST /api/v1/inference request JSON per element; answered by assessment (the v1 response JSON) and probabilities",
				"features": fmt.Sprintf("raw model: FP32 [N,%d] feature rows (feature spec v%d in the model manifest); answered by probabilities alone, with no safety floor", s.Features.Dim(), s.Features.Version),
				"labels":   m.Labels,
			},
		})
	})
}

func (s *Server) handleV2ModelReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.model(w, r) {
			return
		}
		ready := s.Ready.Load()
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]any{"name": s.artifact().Manifest.Name, "ready": ready})
	})
}

func (s *Server) handleV2Infer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.model(w, r) {
			return
		}
		var req v2InferRequest
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 50<<20))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				v2Error(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", mbe.Limit)
				return
			}
			v2Error(w, http.StatusBadRequest, "could not read the body")
			return
		}
		// A features tensor is one long array (N×F numbers): a larger
		// element limit than v1's, the same depth, UTF-8 and duplicate-key rules.
		if err := gateway.CheckJSON(data, maxJSONDepth, 8<<20); err != nil {
			v2Error(w, http.StatusBadRequest, "invalid request: %v", err)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			v2Error(w, http.StatusBadRequest, "invalid request: %v", err)
			return
		}
		if len(req.Inputs) != 1 {
			v2Error(w, http.StatusBadRequest, "want exactly one input tensor: query (BYTES [N]) or features (FP32 [N,%d])", s.Features.Dim())
			return
		}
		in := req.Inputs[0]
		m := s.artifact().Manifest
		resp := v2InferResponse{ModelName: m.Name, ModelVersion: m.Version, ID: req.ID}
		switch {
		case in.Name == "query" && in.Datatype == "BYTES":
			var queries []string
			if err := json.Unmarshal(in.Data, &queries); err != nil || len(in.Shape) != 1 || in.Shape[0] != len(queries) {
				v2Error(w, http.StatusBadRequest, "query: want BYTES data of shape [N] holding N request JSON strings")
				return
			}
			assessments := make([]string, len(queries))
			probs := make([]float32, 0, 5*len(queries))
			for i, q := range queries {
				var vr pipeline.Request
				dq := json.NewDecoder(stringsReader(q))
				dq.DisallowUnknownFields()
				if err := dq.Decode(&vr); err != nil {
					v2Error(w, http.StatusBadRequest, "query[%d]: %s", i, jsonProblem(err))
					return
				}
				if p := vr.Problems(); len(p) > 0 {
					v2Error(w, http.StatusBadRequest, "query[%d]: %v", i, pipeline.ProblemList(p))
					return
				}
				out, err := s.Pipeline.Infer(r.Context(), &vr)
				if err != nil {
					w.Header().Set("Retry-After", "1")
					v2Error(w, http.StatusServiceUnavailable, "query[%d]: %v", i, err)
					return
				}
				s.noteAnswer(r.Context(), "inference", &vr, out)
				s.observe(&vr, out)
				assessments[i] = string(mustJSON(out))
				for k := 1; k <= 5; k++ {
					probs = append(probs, float32(out.Probabilities[fmt.Sprint(k)]))
				}
			}
			resp.Outputs = []v2TensorOut{
				{Name: "assessment", Shape: []int{len(queries)}, Datatype: "BYTES", Data: assessments},
				{Name: "probabilities", Shape: []int{len(queries), 5}, Datatype: "FP32", Data: probs},
			}
		case in.Name == "features" && in.Datatype == "FP32":
			dim := s.Features.Dim()
			var flat []float32
			if err := json.Unmarshal(in.Data, &flat); err != nil || len(in.Shape) != 2 || in.Shape[1] != dim || in.Shape[0]*dim != len(flat) || in.Shape[0] < 0 {
				v2Error(w, http.StatusBadRequest, "features: want FP32 data of shape [N,%d], row-major", dim)
				return
			}
			n := in.Shape[0]
			probs := make([]float32, 0, 5*n)
			out := make([]float64, 5)
			for i := 0; i < n; i++ {
				row := sparseRow(flat[i*dim : (i+1)*dim])
				for _, p := range s.artifact().Model.Predict(row, out) {
					probs = append(probs, float32(p))
				}
			}
			resp.Outputs = []v2TensorOut{{Name: "probabilities", Shape: []int{n, 5}, Datatype: "FP32", Data: probs}}
		default:
			v2Error(w, http.StatusBadRequest, "unknown input %q of type %s: want query (BYTES) or features (FP32)", in.Name, in.Datatype)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func sparseRow(dense []float32) model.Row {
	var row model.Row
	for i, v := range dense {
		if v != 0 {
			row.Idx = append(row.Idx, int32(i))
			row.Val = append(row.Val, v)
		}
	}
	return row
}
