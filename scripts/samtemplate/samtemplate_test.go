package samtemplate_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/scripts/samtemplate"
)

const header = `AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  MysqlDsn:
    Type: String
    NoEcho: true
Globals:
  Function:
    Runtime: provided.al2023
    Environment:
      Variables:
        MYSQL_DSN: !Ref MysqlDsn
        REGION: !Sub "${AWS::Region}"
`

const full = header + `Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-files"
  ProvisionCronFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      CodeUri: .
      Policies:
        - S3CrudPolicy:
            BucketName: !Ref Bucket
      Environment:
        Variables:
          UNITENANT_FUNCTION: provision-cron
          BUCKET_ARN: !GetAtt Bucket.Arn
          LIST: !Join [",", [a, b]]
      Events:
        Every5Minutes:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
        Nightly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(0 3 * * ? *)
  HealthFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      CodeUri: .
      Environment:
        Variables:
          UNITENANT_FUNCTION: health
      Events:
        Health:
          Type: HttpApi
          Properties:
            Path: /api/health
            Method: get
            ApiId: !Ref HttpApi
        Progress:
          Type: HttpApi
          Properties:
            Path: /api/tenants/{code}/progress
            Method: GET
            ApiId:
              Ref: HttpApi
        Catch:
          Type: HttpApi
          Properties:
            Path: /api/auth/{proxy+}
            Method: ANY
            ApiId: !Ref HttpApi
Outputs:
  ApiUrl:
    Value: !Sub "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
`

func TestParse(t *testing.T) {
	t.Parallel()
	tpl, err := samtemplate.Parse([]byte(full))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []samtemplate.Function{
		{
			LogicalID:   "HealthFunction",
			Name:        "health",
			CodeURI:     ".",
			BuildMethod: "makefile",
			Routes: []samtemplate.Route{
				{Method: "GET", Path: "/api/health"},
				{Method: "GET", Path: "/api/tenants/{code}/progress"},
				{Method: "ANY", Path: "/api/auth/{proxy+}"},
			},
		},
		{
			LogicalID:   "ProvisionCronFunction",
			Name:        "provision-cron",
			CodeURI:     ".",
			BuildMethod: "makefile",
			Schedules:   []string{"rate(5 minutes)", "cron(0 3 * * ? *)"},
		},
	}
	if !reflect.DeepEqual(tpl.Functions, want) {
		t.Errorf("Functions:\n got %+v\nwant %+v", tpl.Functions, want)
	}
	if f, ok := tpl.Function("health"); !ok || !f.IsHTTP() || f.IsJob() {
		t.Errorf("Function(health) = %+v, %v; want an HTTP function", f, ok)
	}
	if f, ok := tpl.Function("provision-cron"); !ok || f.IsHTTP() || !f.IsJob() {
		t.Errorf("Function(provision-cron) = %+v, %v; want a job", f, ok)
	}
	if _, ok := tpl.Function("nope"); ok {
		t.Error("Function(nope) found")
	}
}

func TestParseDefaultRoute(t *testing.T) {
	t.Parallel()
	tpl, err := samtemplate.Parse([]byte(header + `Resources:
  WebFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          UNITENANT_FUNCTION: web
      Events:
        All:
          Type: HttpApi
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := tpl.Functions[0].Routes
	want := []samtemplate.Route{{Method: "ANY", Path: samtemplate.DefaultRoutePath}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Routes = %+v, want %+v", got, want)
	}
	if s := got[0].String(); s != "$default" {
		t.Errorf("String() = %q, want $default", s)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	fn := func(id, env, events string) string {
		return header + "Resources:\n  " + id + ":\n    Type: AWS::Serverless::Function\n    Properties:\n" +
			"      Environment:\n        Variables:\n" + env + "      Events:\n" + events
	}
	const getHealth = "        H:\n          Type: HttpApi\n          Properties: {Path: /api/health, Method: GET}\n"
	tests := []struct {
		name, doc, want string
	}{
		{"NotYAML", "Resources: [", "parse sam template"},
		{"NoResources", "AWSTemplateFormatVersion: '2010-09-09'\n", "no Resources"},
		{"NoName", fn("HealthFunction", "          OTHER: x\n", getHealth), "UNITENANT_FUNCTION"},
		{"NameNotLiteral", fn("HealthFunction", "          UNITENANT_FUNCTION: !Ref Name\n", getHealth), "UNITENANT_FUNCTION"},
		{"WrongLogicalID", fn("Health", "          UNITENANT_FUNCTION: health\n", getHealth), "logical ID HealthFunction"},
		{"PathNotLiteral", fn("HealthFunction", "          UNITENANT_FUNCTION: health\n",
			"        H:\n          Type: HttpApi\n          Properties: {Path: !Sub '/${P}', Method: GET}\n"), "Path"},
		{"NoMethod", fn("HealthFunction", "          UNITENANT_FUNCTION: health\n",
			"        H:\n          Type: HttpApi\n          Properties: {Path: /api/health}\n"), "Method"},
		{"NoSchedule", fn("TickFunction", "          UNITENANT_FUNCTION: tick\n",
			"        S:\n          Type: Schedule\n          Properties: {Enabled: true}\n"), "Schedule"},
		{"DuplicateName", fn("HealthFunction", "          UNITENANT_FUNCTION: health\n", getHealth) +
			"  HealthFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      Environment:\n        Variables:\n          UNITENANT_FUNCTION: health\n",
			"both name function"},
		{"DuplicateRoute", fn("HealthFunction", "          UNITENANT_FUNCTION: health\n", getHealth) +
			"  OtherFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      Environment:\n        Variables:\n          UNITENANT_FUNCTION: other\n      Events:\n" + getHealth,
			"served by both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := samtemplate.Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := samtemplate.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(tpl.Functions) != 2 {
		t.Errorf("got %d functions, want 2", len(tpl.Functions))
	}
	if _, err := samtemplate.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load(missing) succeeded")
	}
}

func TestLogicalIDFor(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"health":         "HealthFunction",
		"provision-cron": "ProvisionCronFunction",
		"ai-chat":        "AiChatFunction",
		"tenant-api":     "TenantApiFunction",
	}
	for name, want := range tests {
		if got := samtemplate.LogicalIDFor(name); got != want {
			t.Errorf("LogicalIDFor(%q) = %q, want %q", name, got, want)
		}
	}
}
