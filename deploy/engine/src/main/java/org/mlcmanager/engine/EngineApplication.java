package org.mlcmanager.engine;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.EnableConfigurationProperties;

/** Camunda 7 engine of the MLC Manager: REST API, web apps and the deployment of {@code bpmn/}. */
@SpringBootApplication
@EnableConfigurationProperties(MlcEngineProperties.class)
public class EngineApplication {

  public static void main(String[] args) {
    SpringApplication.run(EngineApplication.class, args);
  }
}
