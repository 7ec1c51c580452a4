/*
 * Beam's Flink job server (FlinkJobServerDriver), except that its jobs ship no jars to the
 * cluster. Beam's FlinkJobInvoker stages the job server's whole classpath with every job
 * (161 jars, 152 MB: about 17 s of upload to the JobManager's blob server, then each
 * TaskManager downloads them and loads Beam's classes again in a class loader of the job's
 * own). deploy/flink.sh puts the same runner jars on the JobManager's and the TaskManagers'
 * classpath instead, so a job needs none of its own. The invoker's choice of files is not
 * an option (PipelineResourcesOptions' detector is @JsonIgnore): the runner it builds is
 * replaced by one with an empty list, everything else is Beam's.
 *
 * Built by `deploy/flink.sh install` (javac against the job server's jars); run as
 * `java -cp <this folder>:<job server jars> StageNothingJobServer <FlinkJobServerDriver args>`,
 * without --flink-conf-dir (its value is not readable from here; deploy/flink.sh does not use
 * it, and a job's own --flink_conf_dir option still applies).
 */

import java.util.Collections;
import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.flink.FlinkJobInvoker;
import org.apache.beam.runners.flink.FlinkJobServerDriver;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.runners.flink.FlinkPipelineRunner;
import org.apache.beam.runners.jobsubmission.JobInvocation;
import org.apache.beam.runners.jobsubmission.PortablePipelineRunner;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.util.concurrent.ListeningExecutorService;

public final class StageNothingJobServer {
  private StageNothingJobServer() {}

  public static void main(String[] args) throws Exception {
    for (String arg : args) {
      if (arg.startsWith("--flink-conf-dir") || arg.startsWith("--flink_conf_dir")) {
        throw new IllegalArgumentException("StageNothingJobServer does not take " + arg);
      }
    }
    FlinkJobServerDriver.FlinkServerConfiguration config = FlinkJobServerDriver.parseArgs(args);
    FlinkJobServerDriver.fromConfig(config, () -> new Invoker(config)).run();
  }

  /** Beam's invoker, with a runner that stages no files. */
  static final class Invoker extends FlinkJobInvoker {
    Invoker(FlinkJobServerDriver.FlinkServerConfiguration config) {
      super(config);
    }

    @Override
    protected JobInvocation createJobInvocation(
        String invocationId,
        String retrievalToken,
        ListeningExecutorService executorService,
        RunnerApi.Pipeline pipeline,
        FlinkPipelineOptions options,
        PortablePipelineRunner runner) {
      if (runner instanceof FlinkPipelineRunner) { // not the jar writer (--output_executable_path)
        runner = new FlinkPipelineRunner(options, null, Collections.emptyList());
      }
      return super.createJobInvocation(
          invocationId, retrievalToken, executorService, pipeline, options, runner);
    }
  }
}
