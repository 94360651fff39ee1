package org.mlcmanager.engine.criteria;

import org.camunda.bpm.engine.ProcessEngine;
import org.camunda.bpm.spring.boot.starter.rest.CamundaJerseyResourceConfig;
import org.springframework.stereotype.Component;

/** Camunda's REST resources under {@code /engine-rest}, and the {@link TestCriteriaResource} beside them. */
@Component
public class RestResources extends CamundaJerseyResourceConfig {

  private final ProcessEngine engine;

  public RestResources(ProcessEngine engine) {
    this.engine = engine;
  }

  @Override
  protected void registerAdditionalResources() {
    register(new TestCriteriaResource(engine));
  }
}
