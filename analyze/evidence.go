package analyze

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
)

// Evidence is the numbers a finding rests on: one struct type per detector
// family (CapacityEvidence, GPUMemoryEvidence, …). Their JSON keys are what
// summary.json has always written, so that tools reading it keep working.
type Evidence interface{ evidence() }

// CapacityEvidence backs the capacity findings (serialization, retrograde,
// throughput_plateau, gpu_saturation): the clean points of the throughput
// curve and the fits over them.
type CapacityEvidence struct {
	Users                  []float64          `json:"users"`
	ThroughputRPS          []float64          `json:"throughput_rps"`
	MeanLatencyMS          []float64          `json:"mean_latency_ms"`
	LatencySlope           float64            `json:"latency_slope_ms_per_user"`
	LatencyR2              float64            `json:"latency_r2"`
	EffectiveParallelism   float64            `json:"effective_parallelism"`
	ServersFromSlope       *float64           `json:"servers_from_slope,omitempty"` // one-user latency over the latency slope: 1 for a single server
	LatencyGrowth          float64            `json:"latency_growth"`
	KneeUsers              *float64           `json:"knee_users,omitempty"`
	UntrustworthyUsers     []float64          `json:"untrustworthy_users,omitempty"`
	USLLambda              *float64           `json:"usl_lambda,omitempty"`
	USLSigma               *float64           `json:"usl_sigma,omitempty"`
	USLKappa               *float64           `json:"usl_kappa,omitempty"`
	USLNMax                *float64           `json:"usl_n_max,omitempty"`
	UsersAtP95Target       *float64           `json:"users_at_p95_target,omitempty"`
	PeakUsers              *float64           `json:"peak_users,omitempty"`
	PeakRPS                *float64           `json:"peak_rps,omitempty"`
	GPUUtilMeanPct         *float64           `json:"gpu_util_mean_pct,omitempty"`
	GPUUtilByUsers         map[string]float64 `json:"gpu_util_by_users,omitempty"`
	CPUUtilMeanPct         *float64           `json:"cpu_util_mean_pct,omitempty"`
	ConcurrentTargetMisses []string           `json:"concurrent_target_misses,omitempty"`
	// Model is the capacity model that fits the curve best, ModelParams
	// its parameters, ModelsRejected the others with how much worse.
	Model          string             `json:"model,omitempty"`
	ModelParams    map[string]float64 `json:"model_params,omitempty"`
	ModelsRejected []ModelFit         `json:"models_rejected,omitempty"`
	// ModelConfidence is the share of curves redrawn from the points'
	// measurement noise that choose the same model; ModelParamsCI the 5th
	// and 95th percentiles of its parameters over those.
	ModelConfidence *float64              `json:"model_confidence,omitempty"`
	ModelParamsCI   map[string][2]float64 `json:"model_params_ci,omitempty"`
	// OperationLatencyGrowth is each operation's mean latency at the most
	// users over that at the fewest, when one operation alone grew.
	OperationLatencyGrowth map[string]float64 `json:"operation_latency_growth,omitempty"`
	// OperationMeanLatencyMS is each operation's mean latency at the most
	// users, for a finding on one operation while the others scale.
	OperationMeanLatencyMS map[string]float64 `json:"operation_mean_latency_ms,omitempty"`
	// OperationModel is the capacity model of that operation's own curve.
	OperationModel       string             `json:"operation_model,omitempty"`
	OperationModelParams map[string]float64 `json:"operation_model_params,omitempty"`
}

// GPUMemoryEvidence backs gpu_memory_pressure.
type GPUMemoryEvidence struct {
	OOMErrors              int64              `json:"oom_errors"`
	GPUMemMaxPct           *float64           `json:"gpu_mem_max_pct,omitempty"`
	GPUMemPctByUsers       map[string]float64 `json:"gpu_mem_pct_by_users,omitempty"`
	KVCacheMaxPct          *float64           `json:"kv_cache_max_pct,omitempty"`
	KVCachePctByUsers      map[string]float64 `json:"kv_cache_pct_by_users,omitempty"`
	OOMErrorsByUsers       map[string]int64   `json:"oom_errors_by_users,omitempty"`
	FirstOOMUsers          *int               `json:"first_oom_users,omitempty"`
	ExampleError           string             `json:"example_error,omitempty"`
	ConcurrentTargetMisses []string           `json:"concurrent_target_misses,omitempty"`
}

// PoolEvidence backs pool_exhaustion.
type PoolEvidence struct {
	OnsetUsers         int                `json:"onset_users"`
	ErrorRatePctByUser map[string]float64 `json:"error_rate_pct_by_users"`
	TimeoutMS          *float64           `json:"timeout_ms,omitempty"`
	SuccessP99MS       *float64           `json:"success_p99_ms,omitempty"`
	SuccessP50BeforeMS *float64           `json:"success_p50_before_ms,omitempty"` // the lowest p50 of the stages before the onset
}

// TimeoutEvidence backs timeouts.
type TimeoutEvidence struct {
	ErrorKind       string             `json:"error_kind"`
	SharePctByUsers map[string]float64 `json:"share_pct_by_users"`
	WorstSharePct   float64            `json:"worst_share_pct"`
	TargetPct       float64            `json:"target_pct"`
	Count           int64              `json:"count"`
}

// TailEvidence backs tail_amplification.
type TailEvidence struct {
	Users      []float64 `json:"users"`
	P99OverP50 []float64 `json:"p99_over_p50"`
	Spearman   float64   `json:"spearman"` // of the series that grew: p99/p50, else the slow share
	// SlowSharePct is the share of successes slower than 3× the median.
	SlowSharePct []float64 `json:"slow_share_pct"`
	// SlowTrendZ is the trend test's z when the slow share is what grew.
	SlowTrendZ *float64 `json:"slow_trend_z,omitempty"`
	// Operation holds most of the slowest 1 % at the most users (its
	// share in OperationSharePct), when one does.
	Operation         string   `json:"tail_operation,omitempty"`
	OperationSharePct *float64 `json:"tail_operation_share_pct,omitempty"`
}

// LoadGenEvidence backs load_generator_saturated: the stages the replayer
// did not drive as intended, and in open mode the worker limit.
type LoadGenEvidence struct {
	Stages          []LaggingStage `json:"stages"`
	Workers         *int           `json:"workers,omitempty"`
	MaxInFlightSeen *int32         `json:"max_in_flight_seen,omitempty"`
}

// LaggingStage is one stage the load generator did not drive as intended,
// with the measurements that say so.
type LaggingStage struct {
	Stage           int      `json:"stage"`
	Users           int      `json:"users"`
	SendLagP99MS    *float64 `json:"send_lag_p99_ms,omitempty"`
	LittleUsers     *float64 `json:"little_users,omitempty"`
	LittlePredicted *float64 `json:"little_predicted,omitempty"`
	LittleOffPct    *float64 `json:"little_off_pct,omitempty"`
	ThinkProfileS   *float64 `json:"think_profile_s,omitempty"` // the profile's mean think
	ThinkSeenS      *float64 `json:"think_seen_s,omitempty"`    // the pauses the generator made, from its records
	HostStealPct    *float64 `json:"host_steal_pct,omitempty"`  // the hypervisor's share of the replayer host's CPU, mean over the stage, when at least 2 %
	Why             string   `json:"why"`
}

// SandboxEvidence backs sandbox_violation.
type SandboxEvidence struct {
	Count        int64            `json:"count"`
	ByOperation  map[string]int64 `json:"by_operation"`
	ExampleError string           `json:"example_error"`
}

func (*CapacityEvidence) evidence()  {}
func (*GPUMemoryEvidence) evidence() {}
func (*PoolEvidence) evidence()      {}
func (*TimeoutEvidence) evidence()   {}
func (*TailEvidence) evidence()      {}
func (*LoadGenEvidence) evidence()   {}
func (*SandboxEvidence) evidence()   {}

// MarshalJSON writes the evidence as an object in key order, its numbers
// rounded for a stable, readable summary.json.
func (f Finding) MarshalJSON() ([]byte, error) {
	type plain Finding
	return json.Marshal(struct {
		plain
		Evidence map[string]any `json:"evidence"`
	}{plain(f), f.EvidenceMap()})
}

func ptr[T any](v T) *T { return &v }

// EvidenceMap is the finding's evidence as summary.json writes it: keys as
// tagged, fields tagged omitempty left out when empty, top-level numbers
// rounded to four decimals, and NaN or infinite ones left out (in a list,
// null): JSON has no NaN.
func (f Finding) EvidenceMap() map[string]any {
	out := map[string]any{}
	if f.Evidence == nil {
		return out
	}
	v := reflect.ValueOf(f.Evidence)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return out
		}
		v = v.Elem()
	}
	for k, val := range structFields(v) {
		switch x := val.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				continue
			}
			out[k] = round(x, 4)
		case map[string]float64:
			m := make(map[string]float64, len(x))
			for kk, vv := range x {
				if !math.IsNaN(vv) && !math.IsInf(vv, 0) {
					m[kk] = round(vv, 4)
				}
			}
			out[k] = m
		case []float64:
			l := make([]any, len(x))
			for i, vv := range x {
				if !math.IsNaN(vv) && !math.IsInf(vv, 0) {
					l[i] = round(vv, 4)
				}
			}
			out[k] = l
		default:
			out[k] = val
		}
	}
	return out
}

// structFields maps a struct's JSON keys to its field values, pointers
// followed and omitempty fields that are empty left out; structs inside
// lists become maps too, so that every object's keys are in order.
func structFields(v reflect.Value) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if opts == "omitempty" && fv.IsZero() || (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && opts == "omitempty" && fv.Len() == 0 {
			continue
		}
		for fv.Kind() == reflect.Pointer && !fv.IsNil() {
			fv = fv.Elem()
		}
		if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct {
			l := make([]map[string]any, fv.Len())
			for j := range l {
				l[j] = structFields(fv.Index(j))
			}
			out[name] = l
			continue
		}
		out[name] = fv.Interface()
	}
	return out
}
