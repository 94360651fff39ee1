package org.mlcmanager.engine;

import java.util.List;
import java.util.Map;
import org.camunda.bpm.engine.ManagementService;
import org.camunda.bpm.engine.RepositoryService;
import org.camunda.bpm.engine.impl.persistence.entity.TimerEntity;
import org.camunda.bpm.engine.management.JobDefinition;
import org.camunda.bpm.engine.repository.ProcessDefinition;
import org.camunda.bpm.engine.runtime.Job;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/**
 * Keeps timer start events that read {@link MlcSchedules} on the schedule configured now.
 *
 * <p>The engine evaluates a timer start event's cycle once, at deployment, and duplicate filtering
 * skips an unchanged BPMN file; so after a schedule changes, the process whose timer still runs on
 * the old cycle is deployed again from its own deployment, which makes a timer on the new one.
 */
@Component
public class ScheduledTimers {

  private static final Logger LOG = LoggerFactory.getLogger(ScheduledTimers.class);

  private final RepositoryService repositoryService;
  private final ManagementService managementService;
  private final MlcSchedules schedules;

  public ScheduledTimers(RepositoryService repositoryService, ManagementService managementService,
      MlcSchedules schedules) {
    this.repositoryService = repositoryService;
    this.managementService = managementService;
    this.schedules = schedules;
  }

  /** Redeploys each process whose scheduled timer start runs on another cycle than configured. */
  public void refresh() {
    Map<String, String> configured = Map.of("mlcSchedules.backTestCron", schedules.getBackTestCron());
    List<JobDefinition> definitions = managementService.createJobDefinitionQuery()
        .jobType("timer-start-event").active().list();
    for (JobDefinition definition : definitions) {
      String expression = String.valueOf(definition.getJobConfiguration());
      configured.forEach((name, cycle) -> {
        if (expression.contains(name)) {
          refresh(definition, name, cycle);
        }
      });
    }
  }

  private void refresh(JobDefinition definition, String name, String cycle) {
    ProcessDefinition process = repositoryService.getProcessDefinition(definition.getProcessDefinitionId());
    List<Job> timers = managementService.createJobQuery().jobDefinitionId(definition.getId()).list();
    boolean current = timers.stream().allMatch(
        job -> job instanceof TimerEntity timer && cycle.equals(timer.getRepeat()));
    if (current || !isLatest(process)) {
      return;
    }
    repositoryService.createDeployment()
        .name(repositoryService.createDeploymentQuery().deploymentId(process.getDeploymentId())
            .singleResult().getName())
        .source("mlc-schedules")
        .addDeploymentResourceByName(process.getDeploymentId(), process.getResourceName())
        .deploy();
    LOG.info("{} now fires on {} = '{}': process {} deployed again", process.getKey(), name, cycle,
        process.getResourceName());
  }

  private boolean isLatest(ProcessDefinition process) {
    ProcessDefinition latest = repositoryService.createProcessDefinitionQuery()
        .processDefinitionKey(process.getKey()).latestVersion().singleResult();
    return latest != null && latest.getId().equals(process.getId());
  }
}
