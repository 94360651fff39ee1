package org.mlcmanager.engine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.camunda.bpm.engine.RepositoryService;
import org.camunda.bpm.engine.repository.Deployment;
import org.camunda.bpm.engine.repository.DeploymentBuilder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.ApplicationArguments;
import org.springframework.boot.ApplicationRunner;
import org.springframework.stereotype.Component;

/**
 * Deploys every BPMN, DMN and form file under {@code mlc.bpmn-dir} when the engine starts.
 *
 * <p>Files are read from the file system, not the jar, so the same jar serves the tests, the local
 * fleet and the Docker image. Resource names are the paths relative to the folder, and duplicate
 * filtering deploys only the files that changed since the last deployment of the same name. It runs
 * before the application reports ready, so {@code /actuator/health/readiness} UP means deployed.
 * Processes whose timers run on a schedule changed since are then deployed again ({@link ScheduledTimers}).
 */
@Component
public class BpmnDirectoryDeployer implements ApplicationRunner {

  private static final Logger LOG = LoggerFactory.getLogger(BpmnDirectoryDeployer.class);
  private static final Set<String> SUFFIXES = Set.of(".bpmn", ".bpmn20.xml", ".dmn", ".dmn11.xml", ".form");

  private final RepositoryService repositoryService;
  private final MlcEngineProperties properties;
  private final ScheduledTimers scheduledTimers;

  public BpmnDirectoryDeployer(RepositoryService repositoryService, MlcEngineProperties properties,
      ScheduledTimers scheduledTimers) {
    this.repositoryService = repositoryService;
    this.properties = properties;
    this.scheduledTimers = scheduledTimers;
  }

  @Override
  public void run(ApplicationArguments args) {
    if (properties.bpmnDir() == null || properties.bpmnDir().isBlank()) {
      LOG.info("mlc.bpmn-dir is empty: no process files deployed on start");
      return;
    }
    Path root = Path.of(properties.bpmnDir()).toAbsolutePath().normalize();
    if (!Files.isDirectory(root)) {
      throw new IllegalStateException("MLC_BPMN_DIR is not a folder: " + root);
    }
    List<Path> files = processFiles(root);
    if (files.isEmpty()) {
      LOG.info("no process files under {}", root);
      return;
    }
    DeploymentBuilder builder = repositoryService.createDeployment()
        .name(properties.deploymentName())
        .source("mlc-bpmn-dir")
        .enableDuplicateFiltering(true);
    for (Path file : files) {
      builder.addString(root.relativize(file).toString().replace('\\', '/'), read(file));
    }
    Deployment deployment = builder.deploy();
    LOG.info("deployed {} process files from {} as deployment {} (unchanged files are kept as they were)",
        files.size(), root, deployment.getId());
    scheduledTimers.refresh();
  }

  private static List<Path> processFiles(Path root) {
    try (Stream<Path> walk = Files.walk(root)) {
      return walk.filter(Files::isRegularFile)
          .filter(path -> SUFFIXES.stream().anyMatch(path.getFileName().toString()::endsWith))
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + root, e);
    }
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file, e);
    }
  }
}
