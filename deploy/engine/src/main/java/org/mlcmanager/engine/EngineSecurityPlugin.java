package org.mlcmanager.engine;

import java.util.ArrayList;
import java.util.List;
import org.camunda.bpm.engine.impl.cfg.AbstractProcessEnginePlugin;
import org.camunda.bpm.engine.impl.cfg.ProcessEngineConfigurationImpl;
import org.camunda.bpm.engine.impl.persistence.deploy.Deployer;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.stereotype.Component;

/**
 * Refuses to build the engine without an admin password (there is no shipped default) and installs
 * the {@link DeploymentGuard} before the engine's own deployers.
 */
@Component
public class EngineSecurityPlugin extends AbstractProcessEnginePlugin {

  private final String adminPassword;
  private final List<String> workerDmnLanguages;

  public EngineSecurityPlugin(@Value("${camunda.bpm.admin-user.password:}") String adminPassword,
      @Value("${mlc.worker-dmn-languages:feel}") List<String> workerDmnLanguages) {
    this.adminPassword = adminPassword;
    this.workerDmnLanguages = workerDmnLanguages;
  }

  @Override
  public void preInit(ProcessEngineConfigurationImpl configuration) {
    if (adminPassword == null || adminPassword.isBlank()) {
      throw new IllegalStateException("MLC_ENGINE_ADMIN_PASSWORD is not set: the engine has no default admin "
          + "password; set it (`mlc up` generates one in <fleet home>/secrets/)");
    }
    List<Deployer> deployers = new ArrayList<>();
    if (configuration.getCustomPreDeployers() != null) {
      deployers.addAll(configuration.getCustomPreDeployers());
    }
    deployers.add(new DeploymentGuard(workerDmnLanguages));
    configuration.setCustomPreDeployers(deployers);
  }
}
