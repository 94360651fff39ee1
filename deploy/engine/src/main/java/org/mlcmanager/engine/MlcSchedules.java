package org.mlcmanager.engine;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.stereotype.Component;

/**
 * Schedules the processes' timers read, so an operator changes them without editing a BPMN file:
 * {@code ${mlcSchedules.backTestCron}} in the Cron Triggered Back Test's timer start event.
 *
 * <p>Values are Camunda cron expressions (seconds first, Quartz style), from {@code mlc.*} in
 * application.yaml. A changed value takes effect when the process is next deployed: the engine
 * computes a timer start event's due dates from the expression at deployment.
 */
@Component("mlcSchedules")
public class MlcSchedules {

  private final String backTestCron;

  public MlcSchedules(@Value("${mlc.back-test-cron}") String backTestCron) {
    this.backTestCron = backTestCron;
  }

  /** When the Cron Triggered Back Test runs (MLC_ENGINE_BACK_TEST_CRON, default every day at 06:00). */
  public String getBackTestCron() {
    return backTestCron;
  }
}
